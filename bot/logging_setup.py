"""Logging for every process, with secrets masked in every record as a defence in depth.

No code should log a secret in the first place; this catches the ones that slip through (an
exception text quoting a request, a library logging a payload). Known shapes are masked — AWS
secret access keys after their usual labels, Slack tokens, Fernet keys, invite tokens, password
values — and so is any value held in flight with `secret_in_flight` (an initial password while
the request carrying it runs, a secret access key while it is being checked).

The registry of in-flight values is bounded and never evicts: when it is full, registering
raises `SecretRegistryFull` and the caller refuses its work instead of going on unmasked.
Masking is an Aho-Corasick automaton rebuilt when a value comes or goes, never while a record
is logged, so a log line costs the same whether 10 or 10,000 values are held.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import ahocorasick

from bot import log_context

MASK = "[redacted]"
#: Shorter values are not masked literally: they would blank out ordinary words in the logs.
MIN_SECRET_LENGTH = 6
#: Distinct values held at once. Values live only while their request runs (a few per worker
#: thread), so reaching this means something holds values it should have let go.
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
    # Invite tokens (secrets.token_urlsafe(32): 43 url-safe characters), masked by shape so
    # that no token, known or guessed, is ever registered: whatever follows /invite/, and any
    # 43-character run with both cases (a token lacks one in about 1 in 10^9; requiring both
    # keeps long snake_case words readable).
    (re.compile(r"(/invite/)[^\s/?#\"'<>]+"), rf"\1{MASK}"),
    (
        re.compile(
            r"(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]{0,42}[A-Z])(?=[A-Za-z0-9_-]{0,42}[a-z])"
            r"[A-Za-z0-9_-]{43}(?![A-Za-z0-9_=-])"
        ),
        MASK,
    ),
    # "password": "...", 'password': '...' (JSON, Python reprs), quoted values.
    (
        re.compile(r"([\"']\w*password\w*[\"']\s*:\s*)([\"'])(?:\\.|(?!\2).)*\2", re.IGNORECASE),
        rf"\1\2{MASK}\2",
    ),
    # password=... in query strings, form bodies, command lines and key=value logs.
    (re.compile(r"(\b\w*password\w*=)[^\s&;,'\"]+", re.IGNORECASE), rf"\1{MASK}"),
)


class SecretRegistryFull(RuntimeError):
    """More values in flight than the registry holds; the caller must not go on unmasked."""


class SecretRegistry:
    """Values to mask wherever they appear, each held until the last holder lets it go.

    Counted, so that two requests holding the same value do not unmask it for each other.
    Never evicts: a value is masked for exactly as long as someone holds it. The automaton is
    replaced whole (copy on write), so `mask` reads it without a lock while another thread
    registers.
    """

    def __init__(self, limit: int = MAX_REGISTERED) -> None:
        self.limit = limit
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._automaton: Any = None
        #: The most values ever held at once (tests check the bound held under a flood).
        self.peak = 0

    def __len__(self) -> int:
        return len(self._held)

    def add(self, value: str) -> bool:
        """Hold `value`; False if it is too short to mask. Raises SecretRegistryFull."""
        return bool(self.add_all([value]))

    def add_all(self, values: list[str]) -> list[str]:
        """Hold every value long enough to mask, all or none; return those held. Raises
        SecretRegistryFull (holding none) when they do not all fit."""
        kept = [v for v in values if len(v) >= MIN_SECRET_LENGTH]
        with self._lock:
            new = {v for v in kept if v not in self._held}
            if len(self._held) + len(new) > self.limit:
                raise SecretRegistryFull(f"{self.limit} secrets already held")
            self._held.update(kept)
            if new:
                self._rebuild()
            self.peak = max(self.peak, len(self._held))
        return kept

    def discard(self, value: str) -> None:
        """Let go of one hold of `value`; unmasked once nobody holds it."""
        self.discard_all([value])

    def discard_all(self, values: list[str]) -> None:
        with self._lock:
            gone = False
            for value in values:
                if value not in self._held:
                    continue
                self._held[value] -= 1
                if self._held[value] <= 0:
                    del self._held[value]
                    gone = True
            if gone:
                self._rebuild()

    def mask(self, text: str) -> str:
        automaton = self._automaton
        if automaton is None:
            return text
        spans: list[list[int]] = []
        # Matches come by end position; overlapping or touching ones are merged, so a secret
        # containing another is masked whole.
        for end, length in sorted(automaton.iter(text), key=lambda m: (m[0] - m[1], -m[1])):
            start = end - length + 1
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end + 1)
            else:
                spans.append([start, end + 1])
        if not spans:
            return text
        pieces, at = [], 0
        for start, stop in spans:
            pieces += [text[at:start], MASK]
            at = stop
        pieces.append(text[at:])
        return "".join(pieces)

    def _rebuild(self) -> None:
        if not self._held:
            self._automaton = None
            return
        automaton = ahocorasick.Automaton()
        for value in self._held:
            automaton.add_word(value, len(value))
        automaton.make_automaton()
        self._automaton = automaton


# Process-wide on purpose: whoever holds a secret registers it without a handle on the logging
# set-up, and every thread's records must be masked alike.
_REGISTRY = SecretRegistry()


def registry() -> SecretRegistry:
    """The process's registry (for tests and the benchmark)."""
    return _REGISTRY


@contextmanager
def secret_in_flight(value: str | None) -> Iterator[None]:
    """Mask `value` in every log record while the block runs, then let it go.

    Raises SecretRegistryFull (before the block runs) when the registry is full: the caller
    answers "try again" rather than handle a secret that would be logged unmasked.
    """
    held = bool(value) and _REGISTRY.add(value or "")
    try:
        yield
    finally:
        if held:
            _REGISTRY.discard(value or "")


def register_secret(value: str | None) -> None:
    """Mask `value` until `forget_secret(value)`; prefer `secret_in_flight`, which cannot leak
    a hold. Raises SecretRegistryFull."""
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


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """The plain format, with the request, integration and actor the line is about appended."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = getattr(record, "roleup_context", None) or {}
        if not context:
            return line
        about = " ".join(
            f"{_TEXT_NAMES[key]}={context[key]}" for key in log_context.FIELDS if key in context
        )
        head, newline, rest = line.partition("\n")  # after the message, before a traceback
        return f"{head} [{redact(about)}]{newline}{rest}"


_TEXT_NAMES = {"request_id": "request", "integration": "integration", "actor": "actor"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: timestamp, level, logger, message, and request_id, integration,
    actor, exception when there are any. Each value is masked before it is serialised: masking
    the serialised line instead would miss a secret whose characters JSON escapes."""

    def format(self, record: logging.LogRecord) -> str:
        redact_record(record)
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        context = getattr(record, "roleup_context", None) or {}
        entry.update({key: redact(context[key]) for key in log_context.FIELDS if key in context})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


#: Third-party loggers whose INFO is bookkeeping that would bury the bot's own lines (their
#: warnings and errors still come through). APScheduler logs "Adding job tentatively", "Added
#: job", "Running job" and "executed successfully" for every job and every reconcile.
QUIET_LOGGERS = (
    "botocore",
    "boto3",
    "urllib3",
    "slack_sdk.web.base_client",
    "alembic",
    "apscheduler",
)


def configure_logging(*, verbose: bool = False, log_format: str = "text") -> None:
    """The process's logging: one format on standard error (text, or JSON lines), secrets
    masked in every record, each line carrying the request it is about."""
    install_redaction()
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_roleup", False)]:
        root.removeHandler(old)
    handler = CurrentStderrHandler()
    handler.setFormatter(formatter_for(log_format))
    handler.addFilter(RedactingFilter())
    handler.addFilter(log_context.ContextFilter())
    handler._roleup = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)
    # At INFO SQLAlchemy logs every statement and its parameters; never wanted from the CLI.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
