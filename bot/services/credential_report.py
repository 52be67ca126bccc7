"""AWS's credential report: console and access-key use, MFA and key ages of every IAM user of
the account in one CSV, fetched with one bulk call instead of calls per user.

`GenerateCredentialReport` is asked until it says COMPLETE (AWS itself makes a new report when
the last one is more than four hours old, and answers COMPLETE at once while it is fresh), then
`GetCredentialReport` returns it. Throttling and a report still being generated are waited out
with a growing backoff, up to a bounded wait; past it the caller is told why in one sentence.

Every value of the report is IAM's text and read as untrusted: a row whose user name or ARN
breaks IAM's rules is dropped, a date that does not parse is taken as unknown, nothing is cut
or stored as read beyond those checks (what is shown is escaped at the edge, bot/slack/mrkdwn).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from bot.services.aws import THROTTLE_CODES, call, error_code, translate
from bot.services.errors import AwsError, Throttled
from bot.services.iam import USERNAME_RE
from bot.services.iam_data import ARN_RE

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

logger = logging.getLogger(__name__)

# How long a campaign start waits for AWS to finish the report (and for throttling to clear).
MAX_WAIT_SECONDS = 120.0
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 15.0
# A credential report is a few hundred bytes a user; far past any real account.
MAX_REPORT_BYTES = 64 * 1024 * 1024
# Still-being-made answers of GetCredentialReport, waited out like an IN_PROGRESS state.
NOT_READY_CODES = frozenset({"ReportInProgress", "ReportNotPresent", "ReportExpired"})


class ReportUnavailable(AwsError):
    """The report could not be had within the bounded wait (the message says why)."""


@dataclass(frozen=True)
class AccessKey:
    active: bool
    last_rotated: datetime | None
    last_used: datetime | None


@dataclass(frozen=True)
class UserCredentials:
    """One row of the report, checked."""

    user_name: str
    arn: str
    created: datetime | None = None
    password_enabled: bool = False
    password_last_used: datetime | None = None
    password_last_changed: datetime | None = None
    mfa_active: bool = False
    keys: tuple[AccessKey, ...] = ()

    @property
    def last_used(self) -> datetime | None:
        """The latest console sign-in or key use, if any."""
        uses = [self.password_last_used, *(k.last_used for k in self.keys)]
        known = [u for u in uses if u is not None]
        return max(known) if known else None


@dataclass
class CredentialReport:
    generated_at: datetime | None
    users: dict[str, UserCredentials] = field(default_factory=dict)
    dropped: int = 0  # rows whose identity broke IAM's rules
    calls: int = 0  # AWS calls made to get it


Sleep = Callable[[float], None]


def fetch(
    iam: IAMClient,
    *,
    max_wait: float = MAX_WAIT_SECONDS,
    sleep: Sleep = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> CredentialReport:
    """Generate (or reuse AWS's fresh) report, then get and parse it."""
    deadline = clock() + max_wait
    backoff = FIRST_BACKOFF_SECONDS
    calls = 0
    last_reason = "AWS did not finish the credential report"
    while True:
        try:
            calls += 1
            state = _generate(iam)
            if state == "COMPLETE":
                calls += 1
                answer = _get(iam)
                report = parse(answer)
                report.calls = calls
                return report
            last_reason = "AWS was still generating the credential report"
        except _NotReady as exc:
            last_reason = exc.reason
        if clock() + backoff > deadline:
            raise ReportUnavailable(
                f"Could not read AWS's credential report: {last_reason} after "
                f"{int(max_wait)} s. Try again in a few minutes."
            )
        sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


class _NotReady(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _generate(iam: IAMClient) -> str:
    try:
        answer = call(iam.generate_credential_report, "generate the credential report")
    except Throttled as exc:
        raise _NotReady("AWS kept throttling the request") from exc
    return str(answer.get("State") or "")


def _get(iam: IAMClient) -> dict[str, Any]:
    try:
        return dict(iam.get_credential_report())
    except ClientError as exc:
        code = error_code(exc)
        if code in NOT_READY_CODES:
            raise _NotReady("the credential report was not ready") from exc
        if code in THROTTLE_CODES:
            raise _NotReady("AWS kept throttling the request") from exc
        # The usual translation (access denied, outages), with the operation named.
        raise translate(exc, "read the credential report") from exc
    except (BotoCoreError, ResponseParserError) as exc:
        raise translate(exc, "read the credential report") from exc


# --- parsing -------------------------------------------------------------------------------------
def parse(answer: dict[str, Any]) -> CredentialReport:
    """The report's CSV, row by row; the root account's row is not a user and is left out."""
    content = answer.get("Content") or b""
    if isinstance(content, str):
        content = content.encode()
    if len(content) > MAX_REPORT_BYTES:
        raise AwsError("AWS's credential report is larger than RoleUp reads (64 MiB).")
    generated = answer.get("GeneratedTime")
    report = CredentialReport(generated_at=_aware(generated) if generated else None)
    text = content.decode("utf-8", errors="replace")
    for row in _rows(text):
        if row is None:  # a line the csv module refused (a cell past its 128 KiB limit)
            report.dropped += 1
            continue
        user_name = row.get("user") or ""
        if user_name == "<root_account>":
            continue
        arn = row.get("arn") or ""
        if not USERNAME_RE.fullmatch(user_name) or not ARN_RE.fullmatch(arn) or len(arn) > 2048:
            report.dropped += 1
            continue
        report.users[user_name] = _user(row, user_name, arn)
    return report


def _rows(text: str) -> Iterator[dict[str, str | None] | None]:
    """The report's rows; None for a line the csv module cannot read, and reading goes on at
    the next line, so one hostile row costs only itself."""
    reader = csv.DictReader(io.StringIO(text))
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield None


def _user(row: dict[str, str | None], user_name: str, arn: str) -> UserCredentials:
    keys = tuple(
        AccessKey(
            active=_flag(row.get(f"access_key_{n}_active")),
            last_rotated=_date(row.get(f"access_key_{n}_last_rotated")),
            last_used=_date(row.get(f"access_key_{n}_last_used_date")),
        )
        for n in (1, 2)
        # A key slot never used for a key says N/A for when it was rotated.
        if _date(row.get(f"access_key_{n}_last_rotated")) is not None
    )
    return UserCredentials(
        user_name=user_name,
        arn=arn,
        created=_date(row.get("user_creation_time")),
        password_enabled=_flag(row.get("password_enabled")),
        password_last_used=_date(row.get("password_last_used")),
        password_last_changed=_date(row.get("password_last_changed")),
        mfa_active=_flag(row.get("mfa_active")),
        keys=keys,
    )


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _date(value: str | None) -> datetime | None:
    """An ISO 8601 time of the report; N/A, no_information, not_supported or anything
    malformed is unknown."""
    text = (value or "").strip()
    if not text or len(text) > 40 or not text[:1].isdigit():
        return None
    try:
        return _aware(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
