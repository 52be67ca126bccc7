"""Public onboarding links: a manager presets an invite, the new user picks username and password.

An invite is answered once, on the web page `/invite/<token>` or in the Slack modal of its DM.
Only the SHA-256 of the token is stored. Answering it creates an `invite_onboard` request that
waits for a manager or approver (bot.services.approvals); the chosen password travels as the
request's secret, so it is stored only encrypted and erased when the request ends.

Marking an invite used is one conditional UPDATE (`... WHERE used_at IS NULL AND expires_at >
now`): of two answers racing each other exactly one wins, the other sees "already used".
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.services import audit
from bot.services.container import Core
from bot.services.errors import (
    AwsUnavailable,
    IntegrationNotFound,
    InvalidInput,
    NotFound,
    ReadOnlyIntegration,
    RoleUpError,
)
from storage.models import Account, Integration, Invite, Request, utcnow

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

logger = logging.getLogger(__name__)

INVITE_ONBOARD = "invite_onboard"
TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 256 bits, 43 url-safe characters
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
# IAM's own rule for user names: 1-64 of letters, digits and + = , . @ _ -
_USERNAME_SHAPE = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")
AWS_SYMBOLS = "!@#$%^&*()_+-=[]{}|'"
MAX_PASSWORD = 128
# Requests still able to create the user: a username they carry is spoken for.
_LIVE_STATES = ("pending", "approved", "running")


# --- errors (RoleUpError subclasses: the web page and Slack map them in one place each) ------
class InviteNotFound(NotFound):
    """Unknown or tampered token: nothing else is said about it."""

    def __init__(self) -> None:
        super().__init__("This invite link is not valid. Check that you copied all of it.")


class InviteGone(RoleUpError):
    """The invite exists but can no longer be answered; `reason` is "expired" or "used"."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        text = {
            "expired": "This invite link has expired. Ask the person who sent it for a new one.",
            "used": "This invite link was already used. Each link works once.",
        }[reason]
        super().__init__(text)


class NotYourInvite(RoleUpError):
    def __init__(self) -> None:
        super().__init__("This invite was sent to someone else.")


class InviteAnswerInvalid(InvalidInput):
    """Several field errors at once, e.g. {"username": "...", "password": "..."}."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__(" ".join(self.errors.values()), field=next(iter(self.errors), None))


# --- values --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreatedInvite:
    """A new invite; `token` exists only here and in the link, never in the store."""

    invite_id: int
    token: str = field(repr=False)
    url: str = field(repr=False)
    expires_at: datetime
    slack_user_id: str | None
    integration: str


@dataclass(frozen=True)
class OpenInvite:
    """What an answerable invite offers the person it was sent to."""

    id: int
    integration_id: int
    integration: str
    slack_user_id: str | None
    groups: list[str]
    policies: list[str]
    created_by: str
    expires_at: datetime
    token_hash: str


@dataclass(frozen=True)
class PasswordPolicy:
    """The account password policy, or AWS's default when the account has none."""

    min_length: int = 8
    require_uppercase: bool = False
    require_lowercase: bool = False
    require_numbers: bool = False
    require_symbols: bool = False
    #: No account policy: AWS wants at least three of the four kinds of character.
    aws_default: bool = True

    @classmethod
    def from_aws(cls, raw: dict[str, Any]) -> PasswordPolicy:
        return cls(
            min_length=int(raw.get("MinimumPasswordLength", 6)),
            require_uppercase=bool(raw.get("RequireUppercaseCharacters")),
            require_lowercase=bool(raw.get("RequireLowercaseCharacters")),
            require_numbers=bool(raw.get("RequireNumbers")),
            require_symbols=bool(raw.get("RequireSymbols")),
            aws_default=False,
        )

    def rules(self) -> list[str]:
        """The policy in plain words, one rule a line, as shown next to the password field."""
        rules = [f"At least {self.min_length} characters (at most {MAX_PASSWORD})."]
        if self.aws_default:
            rules.append(
                "At least three of: uppercase letters, lowercase letters, numbers, "
                f"symbols ({' '.join(AWS_SYMBOLS)})."
            )
        if self.require_uppercase:
            rules.append("At least one uppercase letter (A-Z).")
        if self.require_lowercase:
            rules.append("At least one lowercase letter (a-z).")
        if self.require_numbers:
            rules.append("At least one number (0-9).")
        if self.require_symbols:
            rules.append(f"At least one symbol: {' '.join(AWS_SYMBOLS)}")
        rules.append("Only letters, numbers, spaces and symbols from a US keyboard.")
        rules.append("You must change it the first time you sign in.")
        return rules

    def violations(self, password: str) -> list[str]:
        """What the password misses, in the words of `rules()`; empty when it passes."""
        problems: list[str] = []
        if len(password) < self.min_length:
            problems.append(f"it needs at least {self.min_length} characters")
        if len(password) > MAX_PASSWORD:
            problems.append(f"it can have at most {MAX_PASSWORD} characters")
        if any(not (" " <= ch <= "~") for ch in password):
            problems.append("it can only use letters, numbers, spaces and US keyboard symbols")
        kinds = _kinds(password)
        if self.aws_default and sum(kinds.values()) < 3:
            problems.append("it needs three of: uppercase, lowercase, numbers, symbols")
        for kind, required in (
            ("uppercase", self.require_uppercase),
            ("lowercase", self.require_lowercase),
            ("numbers", self.require_numbers),
            ("symbols", self.require_symbols),
        ):
            if required and not kinds[kind]:
                problems.append(f"it needs at least one {_KIND_WORD[kind]}")
        return problems


_KIND_WORD = {
    "uppercase": "uppercase letter",
    "lowercase": "lowercase letter",
    "numbers": "number",
    "symbols": "symbol",
}


def _kinds(password: str) -> dict[str, bool]:
    return {
        "uppercase": any(ch in string.ascii_uppercase for ch in password),
        "lowercase": any(ch in string.ascii_lowercase for ch in password),
        "numbers": any(ch in string.digits for ch in password),
        "symbols": any(ch in AWS_SYMBOLS for ch in password),
    }


# --- tokens --------------------------------------------------------------------------------
def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite_url(core: Core, token: str) -> str:
    return f"{core.settings.public_url.rstrip('/')}/invite/{token}"


# --- create --------------------------------------------------------------------------------
def create_invite(
    core: Core,
    *,
    integration_id: int,
    slack_user_id: str | None,
    groups: list[str],
    policies: list[str],
    created_by: str,
    ttl_hours: float | None = None,
    now: datetime | None = None,
) -> CreatedInvite:
    """Store a new single-use invite and return its link (the only place the token exists)."""
    now = now or utcnow()
    hours = core.settings.invite_ttl_hours if ttl_hours is None else ttl_hours
    if not 0 < hours <= 24 * 365:
        raise InvalidInput("An invite must expire within a year.")
    token = new_token()
    with core.sessions.begin() as session:
        integration = _integration(session, integration_id)
        row = Invite(
            token_hash=hash_token(token),
            integration_id=integration.id,
            slack_user_id=slack_user_id,
            groups=sorted(dict.fromkeys(groups)),
            policies=sorted(dict.fromkeys(policies)),
            created_by=created_by,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor=created_by,
            action="invite.created",
            target=f"<@{slack_user_id}>" if slack_user_id else f"invite {row.id}",
            integration=integration.name,
            detail={"invite": row.id, "groups": row.groups, "policies": row.policies},
        )
        return CreatedInvite(
            invite_id=row.id,
            token=token,
            url=invite_url(core, token),
            expires_at=row.expires_at,
            slack_user_id=slack_user_id,
            integration=integration.name,
        )


def _integration(session: Session, integration_id: int) -> Integration:
    integration = session.get(Integration, integration_id)
    if integration is None:
        raise IntegrationNotFound("That integration no longer exists.")
    if integration.read_only:
        raise ReadOnlyIntegration(
            f"Integration {integration.name} is read-only: it cannot create accounts."
        )
    return integration


# --- open ----------------------------------------------------------------------------------
def open_invite(core: Core, token: str, *, now: datetime | None = None) -> OpenInvite:
    """The invite behind a link, if it can still be answered.

    Raises InviteNotFound (unknown, malformed or tampered token) or InviteGone (expired/used).
    """
    if not isinstance(token, str) or not _TOKEN_SHAPE.fullmatch(token):
        raise InviteNotFound()
    return _open(core, Invite.token_hash == hash_token(token), now)


def open_invite_by_id(
    core: Core, invite_id: int, *, slack_user_id: str, now: datetime | None = None
) -> OpenInvite:
    """The invite behind a DM button; only the Slack user it was sent to may answer it."""
    found = _open(core, Invite.id == invite_id, now)
    if found.slack_user_id != slack_user_id:
        raise NotYourInvite()
    return found


def _open(core: Core, where: Any, now: datetime | None) -> OpenInvite:
    now = now or utcnow()
    with core.sessions() as session:
        row = session.scalars(select(Invite).where(where)).one_or_none()
        if row is None:
            raise InviteNotFound()
        if row.used_at is not None:
            raise InviteGone("used")
        if row.expires_at <= now:
            raise InviteGone("expired")
        integration = session.get(Integration, row.integration_id)
        if integration is None:  # cascaded away with its integration, but be safe
            raise InviteNotFound()
        return OpenInvite(
            id=row.id,
            integration_id=row.integration_id,
            integration=integration.name,
            slack_user_id=row.slack_user_id,
            groups=list(row.groups),
            policies=list(row.policies),
            created_by=row.created_by,
            expires_at=row.expires_at,
            token_hash=row.token_hash,
        )


# --- the password policy and the answer's checks --------------------------------------------
def password_policy(core: Core, integration_id: int) -> PasswordPolicy:
    """Read the account password policy (GetAccountPasswordPolicy) through the integration."""
    with core.sessions() as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            raise IntegrationNotFound("That integration no longer exists.")
        iam = core.aws.iam_for(integration, core.require_box())
    try:
        raw = iam.get_account_password_policy()["PasswordPolicy"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchEntity":
            return PasswordPolicy()
        if code in ("AccessDenied", "AccessDeniedException"):
            # The key may not read the policy: the default rules are the best guide, and AWS
            # still has the last word when the account is created.
            logger.warning("integration %s cannot read the password policy", integration_id)
            return PasswordPolicy()
        raise AwsUnavailable("AWS could not be reached to read the password policy.") from None
    except BotoCoreError:
        raise AwsUnavailable("AWS could not be reached to read the password policy.") from None
    return PasswordPolicy.from_aws(dict(raw))


def check_answer(
    core: Core, invite: OpenInvite, *, username: str, password: str, confirm: str | None
) -> PasswordPolicy:
    """Raise InviteAnswerInvalid with a message per field that is wrong; no write anywhere."""
    policy = password_policy(core, invite.integration_id)
    errors: dict[str, str] = {}
    username_error = _username_problem(core, invite.integration_id, username)
    if username_error:
        errors["username"] = username_error
    problems = policy.violations(password)
    if not password:
        errors["password"] = "Choose an initial password."  # noqa: S105 (a message)
    elif problems:
        errors["password"] = "This password does not meet the policy: " + "; ".join(problems) + "."
    elif confirm is not None and confirm != password:
        errors["confirm"] = "The two passwords are not the same."
    if errors:
        raise InviteAnswerInvalid(errors)
    return policy


def _username_problem(core: Core, integration_id: int, username: str) -> str | None:
    if not username:
        return "Choose a username."
    if not _USERNAME_SHAPE.fullmatch(username):
        return "A username has 1 to 64 characters: letters, numbers and + = , . @ _ - (no spaces)."
    if _taken_in_store(core, integration_id, username):
        return "That username is taken. Choose another one."
    if _exists_in_iam(core, integration_id, username):
        return "That username is taken. Choose another one."
    return None


def _taken_in_store(core: Core, integration_id: int, username: str) -> bool:
    """An account already synced, or a request still able to create that name (IAM user names
    are unique regardless of case)."""
    wanted = username.lower()
    with core.sessions() as session:
        names = session.scalars(
            select(Account.user_name).where(Account.integration_id == integration_id)
        ).all()
        if any(name.lower() == wanted for name in names):
            return True
        payloads = session.scalars(
            select(Request.payload).where(
                Request.integration_id == integration_id,
                Request.kind.in_(("onboard", INVITE_ONBOARD)),
                Request.state.in_(_LIVE_STATES),
            )
        ).all()
    return any(str(p.get("username", "")).lower() == wanted for p in payloads)


def _exists_in_iam(core: Core, integration_id: int, username: str) -> bool:
    with core.sessions() as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            raise IntegrationNotFound("That integration no longer exists.")
        iam: IAMClient = core.aws.iam_for(integration, core.require_box())
    try:
        iam.get_user(UserName=username)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
            return False
        raise AwsUnavailable("AWS could not be reached to check the username.") from None
    except BotoCoreError:
        raise AwsUnavailable("AWS could not be reached to check the username.") from None
    return True


# --- answer --------------------------------------------------------------------------------
def answer_invite(
    core: Core,
    invite: OpenInvite,
    *,
    username: str,
    password: str,
    confirm: str | None,
    via: str,
) -> Request:
    """Check the answer, mark the invite used (once), and file the pending request.

    Raises InviteAnswerInvalid (nothing changes), InviteGone("used") when another answer won,
    or the approvals service's error (the invite is then released, so it can be answered again).
    """
    username = username.strip()
    check_answer(core, invite, username=username, password=password, confirm=confirm)
    claim(core, invite.id)
    try:
        request = _submit(core, invite, username=username, password=password)
    except BaseException:
        release(core, invite.id)
        raise
    with core.sessions.begin() as session:
        session.execute(
            update(Invite)
            .where(Invite.id == invite.id)
            .values(request_id=request.id)
            .execution_options(synchronize_session=False)
        )
        audit.record(
            session,
            actor=invite.slack_user_id or f"invite {invite.id}",
            action="invite.answered",
            target=username,
            integration=invite.integration,
            request_id=request.id,
            detail={"invite": invite.id, "via": via},
        )
    return request


def claim(core: Core, invite_id: int, *, now: datetime | None = None) -> None:
    """Mark the invite used with one conditional UPDATE; raise InviteGone if this caller lost."""
    now = now or utcnow()
    with core.sessions.begin() as session:
        result = session.execute(
            update(Invite)
            .where(Invite.id == invite_id, Invite.used_at.is_(None), Invite.expires_at > now)
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        won = result.rowcount == 1  # type: ignore[attr-defined]
    if not won:
        with core.sessions() as session:
            row = session.get(Invite, invite_id)
        if row is None:
            raise InviteNotFound()
        raise InviteGone("used" if row.used_at is not None else "expired")


def release(core: Core, invite_id: int) -> None:
    """Undo a claim whose request could not be filed, so nothing is left half-done."""
    with core.sessions.begin() as session:
        session.execute(
            update(Invite)
            .where(Invite.id == invite_id, Invite.request_id.is_(None))
            .values(used_at=None)
            .execution_options(synchronize_session=False)
        )


def _submit(core: Core, invite: OpenInvite, *, username: str, password: str) -> Request:
    from bot.services import approvals

    # The invitee asks; the manager who made the invite is then free to approve it.
    requester = invite.slack_user_id or f"invite:{invite.id}"
    return approvals.submit(
        core,
        kind=INVITE_ONBOARD,
        integration_id=invite.integration_id,
        requester=requester,
        payload={
            "username": username,
            "groups": invite.groups,
            "policies": invite.policies,
            "slack_user_id": invite.slack_user_id,
            "created_by": invite.created_by,
            "invite_id": invite.id,
        },
        secret=password,
    )


# --- CSRF for the web form ------------------------------------------------------------------
def csrf_key(core: Core) -> bytes:
    """A server key for form tokens, derived from the first encryption key (never stored)."""
    keys = core.settings.encryption_keys
    if not keys:
        raise RuntimeError("ROLEUP_ENCRYPTION_KEYS is required to serve invite pages")
    return hmac.new(keys[0].encode(), b"roleup invite form csrf v1", hashlib.sha256).digest()


def csrf_token(core: Core, token_hash: str, nonce: str) -> str:
    """The form's token: bound to this invite and to the browser's cookie nonce."""
    message = f"{token_hash}:{nonce}".encode()
    return hmac.new(csrf_key(core), message, hashlib.sha256).hexdigest()


def csrf_valid(core: Core, token_hash: str, nonce: str | None, sent: str | None) -> bool:
    if not nonce or not sent or len(nonce) > 100 or len(sent) > 100:
        return False
    return hmac.compare_digest(csrf_token(core, token_hash, nonce), sent)
