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
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.logging_setup import secret_in_flight
from bot.services import account_expiry, approvals, audit, grants, iam
from bot.services.container import Core
from bot.services.errors import (
    AwsAccessDenied,
    IntegrationNotFound,
    InvalidInput,
    NotFound,
    ReadOnlyIntegration,
    RoleUpError,
    UserExists,
)
from bot.services.iam import PASSWORD_SYMBOLS, PasswordRules
from bot.services.integration_handle import (
    IntegrationHandle,
    IntegrationRef,
    open_integration,
    use,
)
from bot.services.policy import INVITE_ONBOARD, ONBOARD
from bot.services.reasons import NONE, Justification
from bot.services.records import from_row
from bot.services.request_kinds import OnboardPayload
from storage.models import (
    Account,
    Group,
    Integration,
    Invite,
    ManagedPolicy,
    Request,
    utcnow,
)
from storage.updates import guarded_update

logger = logging.getLogger(__name__)

TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 256 bits, 43 url-safe characters
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
TAKEN = "That username is taken. Choose another one."
MAX_ROW_ID = 2**31 - 1  # the id column's range on PostgreSQL
MAX_PASSWORD = 128
# Wrong answers on the public page before the invite is locked: enough for typos, too few to
# probe which usernames exist in the account.
MAX_FAILED_ATTEMPTS = 10
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
    why: Justification = NONE  # the creator's reason and ticket, carried into the request
    term: grants.Term = field(default_factory=grants.Term)  # how long its groups last
    account_expires: datetime | None = None  # when the account is offboarded by itself


def policy_rules(rules: PasswordRules) -> list[str]:
    """The password policy in plain words, one rule a line, as shown next to the field."""
    lines = [f"At least {rules.minimum_length} characters (at most {rules.maximum_length})."]
    if rules.minimum_kinds:
        lines.append(
            f"At least {rules.minimum_kinds} of: uppercase letters, lowercase letters, "
            f"numbers, symbols ({' '.join(PASSWORD_SYMBOLS)})."
        )
    if rules.require_uppercase:
        lines.append("At least one uppercase letter (A-Z).")
    if rules.require_lowercase:
        lines.append("At least one lowercase letter (a-z).")
    if rules.require_numbers:
        lines.append("At least one number (0-9).")
    if rules.require_symbols:
        lines.append(f"At least one symbol: {' '.join(PASSWORD_SYMBOLS)}")
    lines.append("Only letters, numbers, spaces and symbols from a US keyboard.")
    lines.append("You must change it the first time you sign in.")
    return lines


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
    why: Justification = NONE,
    term: grants.Term | None = None,
    account_expires: datetime | None = None,
) -> CreatedInvite:
    """Store a new single-use invite and return its link (the only place the token exists)."""
    approvals.check_reason(core, [integration_id], why)  # asked of the creator, not the invitee
    now = now or utcnow()
    hours = core.settings.invite_ttl_hours if ttl_hours is None else ttl_hours
    if not 0 < hours <= 24 * 365:
        raise InvalidInput("An invite must expire within a year.")
    for group in groups:
        iam.validate_group_name(group)
    for arn in policies:
        iam.validate_policy_arn(arn)
    if slack_user_id is not None:
        iam.validate_slack_user(slack_user_id)
    if account_expires is not None:
        account_expiry.check(account_expires, now)
    token = new_token()  # masked in logs by its shape (bot.logging_setup), never registered
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
            reason=why.reason,
            ticket=why.ticket,
            grant_seconds=(term or grants.Term()).seconds,
            grant_until=(term or grants.Term()).until,
            account_expires_at=account_expires,
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor=created_by,
            action="invite.created",
            target=f"<@{slack_user_id}>" if slack_user_id else f"invite {row.id}",
            integration=integration.name,
            detail={
                "invite": row.id,
                "groups": row.groups,
                "policies": row.policies,
                **(
                    {"account_expires": account_expiry.shown(account_expires)}
                    if account_expires is not None
                    else {}
                ),
            },
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
    # The token travels in URLs; logs mask it by its shape. It is not registered for masking:
    # anyone can send well-shaped tokens, and a registry they could fill would stop masking.
    return _open(core, Invite.token_hash == hash_token(token), now)


def open_invite_by_id(
    core: Core, invite_id: int, *, slack_user_id: str, now: datetime | None = None
) -> OpenInvite:
    """The invite behind a DM button; only the Slack user it was sent to may answer it."""
    if not 0 < invite_id <= MAX_ROW_ID:  # a hostile id must not reach the database as such
        raise InviteNotFound()
    found = _open(core, Invite.id == invite_id, now)
    if found.slack_user_id != slack_user_id:
        raise NotYourInvite()
    return found


def _open(core: Core, where: Any, now: datetime | None) -> OpenInvite:
    now = now or utcnow()
    with core.sessions() as session:
        row = session.scalars(select(Invite).where(where)).one_or_none()
        if row is None or row.locked_at is not None:  # locked: like any invalid link
            raise InviteNotFound()
        if row.used_at is not None:
            raise InviteGone("used")
        if row.expires_at <= now:
            raise InviteGone("expired")
        integration = session.get(Integration, row.integration_id)
        if integration is None:  # cascaded away with its integration, but be safe
            raise InviteNotFound()
        return from_row(
            OpenInvite,
            row,
            integration=integration.name,
            groups=list(row.groups),
            policies=list(row.policies),
            why=Justification(row.reason, row.ticket),
            term=grants.Term(seconds=row.grant_seconds, until=row.grant_until),
            account_expires=row.account_expires_at,
        )


# --- the password policy and the answer's checks --------------------------------------------
def invitee(invite: OpenInvite) -> str:
    """Who acts when the invitee answers: their Slack user, else the invite (AWS sessions and
    the request name the same)."""
    return invite.slack_user_id or f"invite:{invite.id}"


def password_policy(
    core: Core, integration: IntegrationRef, *, actor: str, request_id: str | None = None
) -> PasswordRules:
    """The account password policy (GetAccountPasswordPolicy), read through the integration
    (once per handle)."""
    handle = use(core, integration, actor=actor, request_id=request_id)
    try:
        return handle.password_rules()
    except AwsAccessDenied:
        # The key may not read the policy: AWS's default rules are the best guide, and AWS
        # still has the last word when the account is created.
        logger.warning("integration %s cannot read the password policy", handle.id)
        return PasswordRules()


def open_for_answer(core: Core, invite: OpenInvite) -> IntegrationHandle:
    """The integration as one answer uses it: acting for the invitee and for the request the
    answer files (its id chosen now), so the checks and the request share one AWS session."""
    return open_integration(
        core, invite.integration_id, actor=invitee(invite), request_id=approvals.new_request_id()
    )


def check_answer(
    core: Core,
    invite: OpenInvite,
    *,
    username: str,
    password: str,
    confirm: str | None,
    handle: IntegrationHandle | None = None,
) -> None:
    """Raise InviteAnswerInvalid with a message per wrong field; writes nothing anywhere."""
    handle = handle or open_for_answer(core, invite)
    rules = password_policy(core, handle, actor=handle.actor, request_id=handle.request_id)
    errors = local_problems(
        core, invite, username=username, password=password, confirm=confirm, rules=rules
    )
    if errors:
        # Every wrong field at once: a name taken in IAM too. Without other errors, the
        # onboarding's own check below looks the name up (once) and says the same.
        if "username" not in errors and _exists_in_iam(handle, username):
            errors["username"] = TAKEN
        raise InviteAnswerInvalid(errors)
    _check_onboard(core, invite, handle, username=username, password=password)


def local_problems(
    core: Core,
    invite: OpenInvite,
    *,
    username: str,
    password: str,
    confirm: str | None,
    rules: PasswordRules,
) -> dict[str, str]:
    """The checks that need only the store and the policy already read: {field: message}.

    Fast enough for Slack's 3 seconds; `check_answer` adds the AWS look-ups.
    """
    errors: dict[str, str] = {}
    username_error = _username_problem(core, invite.integration_id, username)
    if username_error:
        errors["username"] = username_error
    problems = rules.problems(password)
    if not password:
        errors["password"] = "Choose an initial password."  # noqa: S105 (a message)
    elif problems:
        errors["password"] = "This password does not meet the policy: it needs " + (
            "; ".join(problems) + "."
        )
    elif confirm is not None and confirm != password:
        errors["confirm"] = "The two passwords are not the same."
    return errors


def _check_onboard(
    core: Core, invite: OpenInvite, handle: IntegrationHandle, *, username: str, password: str
) -> None:
    """The IAM service's own pre-flight (groups and policies still there, writable...)."""
    from bot.services import lifecycle

    spec = lifecycle.OnboardSpec(
        username=username,
        password=password,
        groups=invite.groups,
        policies=invite.policies,
        slack_user_id=invite.slack_user_id,
        created_by=invite.created_by,
    )
    try:
        lifecycle.check_onboard(
            core, handle, spec, actor=handle.actor, request_id=handle.request_id
        )
    except UserExists:
        # The same words for every taken name, in the prefix or not and whatever the spelling:
        # the page must not tell strangers more about the account than "taken".
        raise InviteAnswerInvalid({"username": TAKEN}) from None
    except RoleUpError as exc:
        if exc.field in ("username", "password"):
            raise InviteAnswerInvalid({exc.field: exc.user_message}) from None
        raise


def _username_problem(core: Core, integration_id: int, username: str) -> str | None:
    if not username:
        return "Choose a username."
    if not iam.USERNAME_RE.fullmatch(username):
        return "A username has 1 to 64 characters: letters, numbers and + = , . @ _ - (no spaces)."
    if _taken_in_store(core, integration_id, username):
        return TAKEN
    return None


def _exists_in_iam(handle: IntegrationHandle, username: str) -> bool:
    return iam.user_exists(handle.iam, username)


def _taken_in_store(core: Core, integration_id: int, username: str) -> bool:
    """An account already synced, or a request still able to create that name (IAM user names
    are unique regardless of case)."""
    wanted = username.lower()
    with core.sessions() as session:
        synced = session.scalar(
            select(Account.id).where(
                Account.integration_id == integration_id,
                func.lower(Account.user_name) == wanted,
            )
        )
        if synced is not None:
            return True
        payloads = session.scalars(
            select(Request.payload).where(
                Request.integration_id == integration_id,
                Request.kind.in_((ONBOARD, INVITE_ONBOARD)),
                Request.state.in_(_LIVE_STATES),
            )
        ).all()
    return any(str(p.get("username", "")).lower() == wanted for p in payloads)


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
    # Masked while this answer is handled; then it exists only as the request's ciphertext.
    handle = open_for_answer(core, invite)
    with secret_in_flight(password):
        check_answer(
            core, invite, username=username, password=password, confirm=confirm, handle=handle
        )
        claim(core, invite.id)
        try:
            request = _submit(core, invite, handle, username=username, password=password)
        except BaseException:
            release(core, invite.id)
            raise
    with core.sessions.begin() as session:
        guarded_update(session, Invite, [Invite.id == invite.id], request_id=request.id)
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
        result = guarded_update(
            session,
            Invite,
            [
                Invite.id == invite_id,
                Invite.used_at.is_(None),
                Invite.locked_at.is_(None),
                Invite.expires_at > now,
            ],
            used_at=now,
        )
        won = result == 1
    if not won:
        with core.sessions() as session:
            row = session.get(Invite, invite_id)
        if row is None or row.locked_at is not None:
            raise InviteNotFound()
        raise InviteGone("used" if row.used_at is not None else "expired")


def release(core: Core, invite_id: int) -> None:
    """Undo a claim whose request could not be filed, so nothing is left half-done."""
    with core.sessions.begin() as session:
        guarded_update(
            session, Invite, [Invite.id == invite_id, Invite.request_id.is_(None)], used_at=None
        )


def _submit(
    core: Core, invite: OpenInvite, handle: IntegrationHandle, *, username: str, password: str
) -> Request:
    # The invitee asks; the manager who made the invite never decides it (policy).
    requester = invitee(invite)
    payload = OnboardPayload(
        integration_id=invite.integration_id,
        integration=invite.integration,
        username=username,
        groups=list(invite.groups),
        policies=list(invite.policies),
        slack_user_id=invite.slack_user_id,
        created_by=invite.created_by,
        invite_id=invite.id,
        invite_creator=invite.created_by,
        **invite.term.dump(),
        account_expires=account_expiry.dump(invite.account_expires),
    )
    return approvals.submit(
        core,
        payload,
        requester=requester,
        secret=password,
        why=invite.why,
        request_id=handle.request_id,
        handles=[handle],
    )


# --- wrong answers on the public page -------------------------------------------------------
def take_attempt(core: Core, invite_id: int) -> None:
    """Count an answer as failed before it is checked, so that parallel answers cannot exceed
    MAX_FAILED_ATTEMPTS checks; `give_back_attempt` when it turns out not to be a wrong answer.

    Raises InviteNotFound when the invite has no attempt left (it is, or is about to be,
    locked): a locked invite answers like any invalid link.
    """
    with core.sessions.begin() as session:
        result = guarded_update(
            session,
            Invite,
            [
                Invite.id == invite_id,
                Invite.locked_at.is_(None),
                Invite.failed_attempts < MAX_FAILED_ATTEMPTS,
            ],
            failed_attempts=Invite.failed_attempts + 1,
        )
        if result != 1:
            raise InviteNotFound()


def give_back_attempt(core: Core, invite_id: int) -> None:
    with core.sessions.begin() as session:
        guarded_update(
            session,
            Invite,
            [Invite.id == invite_id, Invite.locked_at.is_(None), Invite.failed_attempts > 0],
            failed_attempts=Invite.failed_attempts - 1,
        )


def lock_if_exhausted(core: Core, invite: OpenInvite, *, now: datetime | None = None) -> bool:
    """Lock the invite once its wrong answers reach the limit; True for the one caller that
    locked it (and so tells its creator)."""
    now = now or utcnow()
    with core.sessions.begin() as session:
        result = guarded_update(
            session,
            Invite,
            [
                Invite.id == invite.id,
                Invite.locked_at.is_(None),
                Invite.used_at.is_(None),
                Invite.failed_attempts >= MAX_FAILED_ATTEMPTS,
            ],
            locked_at=now,
        )
        locked = result == 1
        if locked:
            who = f"<@{invite.slack_user_id}>" if invite.slack_user_id else f"invite {invite.id}"
            audit.record(
                session,
                actor=f"invite {invite.id}",
                action="invite.locked",
                target=who,
                integration=invite.integration,
                outcome="refused",
                detail={"invite": invite.id, "failed_attempts": MAX_FAILED_ATTEMPTS},
            )
    if locked:
        logger.warning("invite %s locked after %s wrong answers", invite.id, MAX_FAILED_ATTEMPTS)
    return locked


# --- for the Slack surfaces ------------------------------------------------------------------
@dataclass(frozen=True)
class InviteChoices:
    """What the "make an invite" modal offers for one integration."""

    groups: list[str]
    policies: list[tuple[str, str]]  # (arn, name)


def invite_choices(core: Core, integration_id: int) -> InviteChoices:
    """The integration's synced groups by name, and up to 100 managed policies: the customer
    managed ones first (they are what teams grant), AWS's after."""
    with core.sessions() as session:
        groups = session.scalars(
            select(Group.name).where(Group.integration_id == integration_id).order_by(Group.name)
        ).all()
        policies = session.execute(
            select(ManagedPolicy.arn, ManagedPolicy.name)
            .where(ManagedPolicy.integration_id == integration_id)
            .order_by(ManagedPolicy.aws_managed, ManagedPolicy.name)
            .limit(100)
        ).all()
    return InviteChoices(list(groups), [(arn, name) for arn, name in policies])


def revoke_unsent(core: Core, invite_id: int) -> None:
    """Delete an invite nobody received (its DM failed), unless it has been used."""
    with core.sessions.begin() as session:
        session.execute(delete(Invite).where(Invite.id == invite_id, Invite.used_at.is_(None)))
