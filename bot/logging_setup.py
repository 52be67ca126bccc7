"""Logging for every process, with secrets masked in every record as a defence in depth.

No code should log a secret in the first place; this catches the ones that slip through (an
exception text quoting a request, a library logging a payload). Known shapes are masked — AWS
secret access keys after their usual labels, Slack tokens, Fernet keys, password values — and
so is any value registered at runtime with `register_secret` (an initial password or a secret
access key while it is in flight).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

MASK = "[redacted]"
#: Shorter values are not masked literally: they would blank out ordinary words in the logs.
MIN_SECRET_LENGTH = 6
MAX_REGISTERED = 10_000

_AWS_KEY_LABELS = (
    r"(?:aws_secret_access_key|secret_access_key|secretaccesskey|aws_secret_key|secret_key"
    r"|secretkey)"
)
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # An AWS secret access key (40 base64 characters) after a label, quoted or not.
    (
        re.compile(
            rf"({_AWS_KEY_LABELS}[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{{40}}(?![A-Za-z0-9/+=])",
            re.IGNORECASE,
        ),
        rf"\1{MASK}",
    ),
    # AWS temporary credentials' session token after its label.
    (
        re.compile(
            r"((?:aws_session_token|sessiontoken)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{16,}",
            re.IGNORECASE,
        ),
        rf"\1{MASK}",
    ),
    # The same in IAM/STS XML responses (botocore logs bodies at DEBUG).
    (
        re.compile(r"(<(SecretAccessKey|SessionToken|Password)>)[^<]*(</\2>)"),
        rf"\1{MASK}\3",
    ),
    # Slack tokens: bot, user, app-level, refresh, config...
    (re.compile(r"\b(xox[abposer]|xapp)-[A-Za-z0-9-]+"), rf"\1-{MASK}"),
    # Fernet keys: 32 url-safe base64 bytes, 44 characters ending in "=".
    (re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])"), MASK),
    # "password": "...", 'password': '...' (JSON, Python reprs), quoted values.
    (
        re.compile(r"([\"']\w*password\w*[\"']\s*:\s*)([\"'])(?:\\.|(?!\2).)*\2", re.IGNORECASE),
        rf"\1\2{MASK}\2",
    ),
    # password=... in query strings, form bodies, command lines and key=value logs.
    (re.compile(r"(\b\w*password\w*=)[^\s&;,'\"]+", re.IGNORECASE), rf"\1{MASK}"),
)


class SecretRegistry:
    """Values to mask wherever they appear, most recent kept when the bound is reached."""

    def __init__(self, limit: int = MAX_REGISTERED) -> None:
        self._values: OrderedDict[str, None] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        if len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            self._values[value] = None
            self._values.move_to_end(value)
            while len(self._values) > self._limit:
                self._values.popitem(last=False)
            self._pattern = None

    def discard(self, value: str) -> None:
        with self._lock:
            if self._values.pop(value, 1) is None:
                self._pattern = None

    def mask(self, text: str) -> str:
        pattern = self._compiled()
        return pattern.sub(MASK, text) if pattern is not None else text

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._values:
                # Longest first, so a secret containing another is masked whole.
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            return self._pattern


# Process-wide on purpose: whoever holds a secret registers it without a handle on the logging
# set-up, and every thread's records must be masked alike.
_REGISTRY = SecretRegistry()


def register_secret(value: str | None) -> None:
    """Mask `value` in every log record from now on (passwords and keys in flight)."""
    if value:
        _REGISTRY.add(value)


def forget_secret(value: str | None) -> None:
    if value:
        _REGISTRY.discard(value)


def redact(text: str) -> str:
    """`text` with every known secret shape and every registered secret masked."""
    text = _REGISTRY.mask(text)
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, exception text and stack before any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> None:
    if getattr(record, "_roleup_redacted", False):
        return
    try:
        message = record.getMessage()
    except Exception:  # a malformed %-format: keep what there is, masked
        message = f"{record.msg} {record.args}"
    record.msg, record.args = redact(message), ()
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._roleup_redacted = True


def install_redaction() -> None:
    """Mask every record created in this process from now on, whichever handler gets it.

    Done in the record factory rather than on handlers so that handlers added later (gunicorn's,
    a test's capture) never see an unmasked record. Installing twice is harmless.
    """
    current = logging.getLogRecordFactory()
    if getattr(current, "_roleup_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        redact_record(record)
        return record

    redacting: Callable[..., logging.LogRecord] = factory
    redacting._roleup_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting)


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (so a replaced stderr is honoured)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(*, verbose: bool = False) -> None:
    """The CLI's logging: one format on standard error, secrets masked in every record."""
    install_redaction()
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_roleup", False)]:
        root.removeHandler(old)
    handler = CurrentStderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    handler._roleup = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Third-party chatter that would only bury the bot's own lines.
    for noisy in (
        "botocore",
        "boto3",
        "urllib3",
        "slack_sdk.web.base_client",
        "alembic",
    ):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)
    # At INFO SQLAlchemy logs every statement and its parameters; never wanted from the CLI.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
