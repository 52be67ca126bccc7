"""Time-bound group grants: how long one lasts, its row, and how it ends.

A group added through RoleUp can be given *for* a while (1 hour to 30 days) or *until* a date
(at least a minute ahead, at most 90 days). The request carries that term; when it runs, one
`Grant` row per added group is written before IAM is touched, so a crash between the two can
only leave a grant whose membership is missing (ended as "removed outside RoleUp" when it comes
due), never a membership that nobody will remove.

A grant ends once: the process that moves it from active to ending (a guarded UPDATE) is the
only one that removes the membership, through a request of its own kind (bot.services.expiry).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services import iam, lifecycle
from bot.services.errors import (
    GroupNotFound,
    InvalidInput,
    RequestConflict,
    RoleUpError,
    TargetReplaced,
    UserNotFound,
)
from bot.services.records import from_row
from storage.models import Account, Grant, Group, Integration, Membership, utcnow
from storage.updates import guarded_update

if TYPE_CHECKING:
    from bot.services.container import Core
    from bot.services.request_kinds import EndGrantPayload

ACTIVE, ENDING, ENDED = "active", "ending", "ended"

PERMANENT = "permanent"
UNTIL = "until"
# The choices offered next to each change, in order: value, label, length.
DURATIONS: tuple[tuple[str, str, timedelta | None], ...] = (
    (PERMANENT, "Permanent", None),
    ("1h", "1 hour", timedelta(hours=1)),
    ("4h", "4 hours", timedelta(hours=4)),
    ("1d", "1 day", timedelta(days=1)),
    ("7d", "7 days", timedelta(days=7)),
    ("30d", "30 days", timedelta(days=30)),
)
LENGTHS = {value: length for value, _label, length in DURATIONS}
MIN_AHEAD = timedelta(minutes=1)
MAX_AHEAD = timedelta(days=90)
# Reasons a grant ended, as people read them.
EXPIRED = "expired"
REMOVED_OUTSIDE = "removed outside RoleUp"
GROUP_GONE = "group gone"
USER_GONE = "user gone"
NOT_GRANTED = "not granted: the change failed"
ALREADY_MEMBER = "already a member when granted: left as it was"


def shown(moment: datetime) -> str:
    """`2026-12-02 14:00 UTC`: how every surface prints a grant's end."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Term:
    """How long added groups last: permanent, a length counted from when the change runs,
    or until a moment."""

    seconds: int | None = None
    until: datetime | None = None

    @property
    def permanent(self) -> bool:
        return self.seconds is None and self.until is None

    def end_from(self, start: datetime) -> datetime | None:
        if self.until is not None:
            return self.until
        if self.seconds is not None:
            return start + timedelta(seconds=self.seconds)
        return None

    def describe(self) -> str:
        if self.until is not None:
            return f"until {shown(self.until)}"
        if self.seconds is not None:
            return f"for {_length_words(timedelta(seconds=self.seconds))}"
        return "permanently"

    def dump(self) -> dict[str, Any]:
        """The payload fields `for_seconds` and `until`."""
        return {
            "for_seconds": self.seconds,
            "until": self.until.isoformat() if self.until is not None else None,
        }

    @classmethod
    def load(cls, for_seconds: Any, until: Any) -> Term:
        try:
            moment = datetime.fromisoformat(until) if isinstance(until, str) else None
        except ValueError:
            moment = None
        seconds = for_seconds if isinstance(for_seconds, int) and for_seconds > 0 else None
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return cls(seconds=seconds, until=moment)


def _length_words(length: timedelta) -> str:
    for _value, label, known in DURATIONS:
        if known == length:
            return label
    hours = length.total_seconds() / 3600
    return f"{hours:g} hours" if hours < 48 else f"{hours / 24:g} days"


def term_of(choice: str | None, until_timestamp: Any, now: datetime | None = None) -> Term:
    """The term a form asked for, or InvalidInput saying what is wrong (shown by the field)."""
    now = now or utcnow()
    if choice in (None, "", PERMANENT):
        return Term()
    if choice in LENGTHS:
        length = LENGTHS[choice]
        assert length is not None
        return Term(seconds=int(length.total_seconds()))
    if choice != UNTIL:
        raise InvalidInput("Choose how long the access lasts from the list.")
    if until_timestamp in (None, ""):
        raise InvalidInput("Pick the date and time the access ends.")
    try:
        moment = datetime.fromtimestamp(int(until_timestamp), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise InvalidInput("That end date is not a date and time.") from None
    return Term(until=check_until(moment, now))


def check_until(moment: datetime, now: datetime | None = None) -> datetime:
    now = now or utcnow()
    if moment < now + MIN_AHEAD:
        raise InvalidInput("The end must be at least one minute from now.")
    if moment > now + MAX_AHEAD:
        raise InvalidInput("The end must be within 90 days.")
    return moment


# --- writing and ending -----------------------------------------------------------------------
@dataclass(frozen=True)
class GrantTarget:
    integration_id: int
    user_name: str
    user_id: str | None
    requester: str
    request_id: str
    slack_user_id: str | None = None  # else read from the store's account


def open_grants(
    session: Session,
    target: GrantTarget,
    groups: Sequence[str],
    ends_at: datetime,
    now: datetime,
    *,
    breakglass: bool = False,
    reason: str | None = None,
) -> dict[str, int]:
    """One active grant per group; group -> grant id, to settle once IAM has answered. A
    break-glass grant counts as announced now: its request posts the first announcement."""
    slack_user = target.slack_user_id or session.scalar(
        select(Account.slack_user_id).where(
            Account.integration_id == target.integration_id,
            Account.user_name == target.user_name,
        )
    )
    rows = [
        Grant(
            integration_id=target.integration_id,
            user_name=target.user_name,
            user_id=target.user_id,
            group_name=group,
            slack_user_id=slack_user,
            requester=target.requester,
            request_id=target.request_id,
            starts_at=now,
            ends_at=ends_at,
            state=ACTIVE,
            breakglass=breakglass,
            reason=reason[:500] if reason else None,
            announced_at=now if breakglass else None,
        )
        for group in groups
    ]
    session.add_all(rows)
    session.flush()
    return {row.group_name: row.id for row in rows}


def close(
    session: Session,
    grant_ids: Iterable[int],
    reason: str,
    *,
    now: datetime | None = None,
    request_id: str | None = None,
    from_states: Sequence[str] = (ACTIVE, ENDING),
) -> int:
    """End these grants (only those not ended yet) with `reason`; how many ended."""
    ids = list(grant_ids)
    if not ids:
        return 0
    result = guarded_update(
        session,
        Grant,
        [Grant.id.in_(ids), Grant.state.in_(from_states)],
        state=ENDED,
        **Grant.ended(now or utcnow(), reason, request_id),
    )
    return result


def close_removed(
    session: Session,
    integration_id: int,
    user_name: str,
    groups: Iterable[str],
    *,
    reason: str,
    request_id: str | None,
) -> int:
    """A group removed through RoleUp ends whatever grant gave it."""
    wanted = list(groups)
    if not wanted:
        return 0
    ids = session.scalars(
        select(Grant.id).where(
            Grant.integration_id == integration_id,
            Grant.user_name == user_name,
            Grant.group_name.in_(wanted),
            Grant.state == ACTIVE,
        )
    ).all()
    return close(session, ids, reason, request_id=request_id, from_states=(ACTIVE,))


# --- as a request runs ------------------------------------------------------------------------
def open_for(
    core: Core,
    target: GrantTarget,
    groups: Sequence[str],
    term: Term,
    *,
    breakglass: bool = False,
    reason: str | None = None,
) -> dict[str, int]:
    """The grants of groups about to be added (none when the term is permanent). An end
    already past refuses the change before IAM is touched."""
    if term.permanent or not groups:
        return {}
    now = utcnow()
    ends_at = term.end_from(now)
    assert ends_at is not None
    if ends_at <= now:
        raise InvalidInput(
            f"The access was asked until {shown(ends_at)}, which has passed: ask again."
        )
    with core.sessions.begin() as session:
        return open_grants(
            session, target, groups, ends_at, now, breakglass=breakglass, reason=reason
        )


def pin(core: Core, opened: dict[str, int], integration_id: int, user_name: str) -> None:
    """Grants opened for a user who did not exist yet take its UserId (and link) once made."""
    if not opened:
        return
    with core.sessions.begin() as session:
        user_id, slack_user = session.execute(
            select(Account.user_id, Account.slack_user_id).where(
                Account.integration_id == integration_id, Account.user_name == user_name
            )
        ).one()
        guarded_update(
            session,
            Grant,
            [Grant.id.in_(list(opened.values()))],
            user_id=user_id,
            slack_user_id=slack_user,
        )


class GroupChangeAsked(Protocol):
    """What settle reads of a request adding groups (SetGroups, BreakGlass)."""

    @property
    def integration_id(self) -> int: ...
    @property
    def user_name(self) -> str: ...
    @property
    def removed(self) -> Sequence[str]: ...


def settle(
    core: Core,
    payload: GroupChangeAsked,
    opened: dict[str, int],
    *,
    granted: Sequence[str] | None,
    request_id: str,
) -> str | None:
    """After IAM answered (`granted` None when the change failed and was undone): grants of
    groups not actually added end (the user already had the group, which is left as it was);
    groups removed end their grants. Returns how the kept grants end (`until …`), if any."""
    added = list(granted or [])
    kept = [opened[g] for g in added if g in opened]
    dropped = [gid for g, gid in opened.items() if g not in added]
    with core.sessions.begin() as session:
        close(session, dropped, NOT_GRANTED if granted is None else ALREADY_MEMBER)
        if granted is not None:
            close_removed(
                session,
                payload.integration_id,
                payload.user_name,
                payload.removed,
                reason=f"removed through RoleUp (request {request_id[:8]})",
                request_id=request_id,
            )
        if not kept:
            return None
        ends = session.scalar(select(Grant.ends_at).where(Grant.id == kept[0]))
    return f"until {shown(ends)}" if ends else None


def extend(core: Core, grant_id: int, term: Term, *, request_id: str) -> datetime:
    """Give an active grant its new end (reminders start again); RoleUpError if it ended or
    the new end is not later than the one it has."""
    now = utcnow()
    ends_at = term.end_from(now)
    if ends_at is None:
        raise InvalidInput("Choose how long the access lasts.")
    with core.sessions.begin() as session:
        current = session.scalar(
            select(Grant.ends_at).where(Grant.id == grant_id, Grant.state == ACTIVE)
        )
        if current is None:
            raise RequestConflict(
                "That grant has ended (or is ending): ask for the group again with /groups."
            )
        if ends_at <= current:
            raise InvalidInput(f"That ends before the grant already does ({shown(current)}).")
        # Still active and still ending when it was read: an end claimed meanwhile (the
        # expiry job, End now) wins, and this extension says so instead of claiming success.
        moved = guarded_update(
            session,
            Grant,
            [Grant.id == grant_id, Grant.state == ACTIVE, Grant.ends_at == current],
            ends_at=ends_at,
            reminded_24h_at=None,
            reminded_1h_at=None,
            failures=0,
            next_attempt_at=None,
        )
        if moved != 1:
            raise RequestConflict(
                "That grant ended (or changed) while it was being extended: ask again."
            )
    return ends_at


def remove_granted(core: Core, payload: EndGrantPayload, *, actor: str, request_id: str) -> str:
    """Remove exactly the grant's membership and end the grant, saying what happened."""
    who = f"{payload.group} of {payload.user_name} in {payload.integration}"
    try:
        change = lifecycle.apply_group_change(
            core,
            payload.integration_id,
            payload.user_name,
            added=[],
            removed=[payload.group],
            expected_user_id=payload.user_id,
            actor=actor,
            request_id=request_id,
        )
        if change.removed:
            reason, text = payload.reason, f"Grant of {who} ended ({payload.reason})."
        elif _group_exists(core, payload.integration_id, payload.group, actor, request_id):
            reason, text = REMOVED_OUTSIDE, f"{who}: the membership was already removed."
        else:
            reason, text = GROUP_GONE, f"{who}: the group no longer exists."
    except (UserNotFound, TargetReplaced):
        reason, text = USER_GONE, f"{who}: the IAM user is gone or was replaced."
    with core.sessions.begin() as session:
        close(session, [payload.grant_id], reason, request_id=request_id)
    return text


def _group_exists(core: Core, integration_id: int, group: str, actor: str, request_id: str) -> bool:
    integration = lifecycle.load_integration(core, integration_id)
    client = lifecycle.iam_client(core, integration, actor=actor, request_id=request_id)
    try:
        iam.require_group(client, group)
    except GroupNotFound:
        return False
    return True


# --- reading ----------------------------------------------------------------------------------
def ends_of(
    session: Session, integration_ids: Sequence[int]
) -> dict[tuple[int, str, str], datetime]:
    """(integration id, user name, group) -> when its active grant ends."""
    if not integration_ids:
        return {}
    query = select(Grant.integration_id, Grant.user_name, Grant.group_name, Grant.ends_at).where(
        Grant.integration_id.in_(integration_ids), Grant.state.in_((ACTIVE, ENDING))
    )
    return {(i, u, g): end for i, u, g, end in session.execute(query)}


def ends_for_user(core: Core, integration_id: int, user_name: str) -> dict[str, datetime]:
    """Group -> when the user's active grant of it ends."""
    with core.sessions() as session:
        ends = ends_of(session, [integration_id])
    return {group: end for (_i, user, group), end in ends.items() if user == user_name}


def end_of_request(core: Core, request_id: str) -> datetime | None:
    """When the grants a request made end (they share one end)."""
    query = select(Grant.ends_at).where(Grant.request_id == request_id, Grant.state != ENDED)
    with core.sessions() as session:
        return session.scalar(query.limit(1))


def with_ends(groups: Iterable[str], ends: dict[str, datetime]) -> list[str]:
    """Group names as people read them: `admins (until 2026-12-02 14:00 UTC)`."""
    return [f"{g} (until {shown(ends[g])})" if g in ends else g for g in groups]


@dataclass(frozen=True)
class GrantRow:
    id: int
    integration: str
    user_name: str
    group: str
    requester: str
    slack_user_id: str | None
    ends_at: datetime
    state: str
    end_reason: str | None
    breakglass: bool = False
    reason: str | None = None
    acknowledged_by: str | None = None


def list_grants(
    session: Session,
    *,
    integration: str | None = None,
    ending_within: timedelta | None = None,
    now: datetime | None = None,
    include_ended: bool = False,
) -> list[GrantRow]:
    query = select(Grant, Integration.name).join(
        Integration, Integration.id == Grant.integration_id
    )
    if integration is not None:
        query = query.where(Integration.name == integration)
    if not include_ended:
        query = query.where(Grant.state != ENDED)
    if ending_within is not None:
        query = query.where(Grant.ends_at <= (now or utcnow()) + ending_within)
    query = query.order_by(Grant.ends_at, Grant.id)
    return [row_of(g, name) for g, name in session.execute(query)]


def grant_row(session: Session, grant_id: int) -> GrantRow | None:
    found = session.execute(
        select(Grant, Integration.name)
        .join(Integration, Integration.id == Grant.integration_id)
        .where(Grant.id == grant_id)
    ).one_or_none()
    return row_of(*found) if found is not None else None


def extendable(core: Core, grant_id: int | None) -> GrantRow:
    """The active grant an Extend button names (None: an unreadable button), or RoleUpError."""
    with core.sessions() as session:
        grant = grant_row(session, grant_id) if grant_id is not None else None
    if grant is None or grant.state != ACTIVE:
        raise RoleUpError("That grant has ended: ask for the group again with /groups.")
    return grant


def held_by(session: Session, slack_user_id: str) -> list[GrantRow]:
    """The active grants of one person's linked accounts, soonest end first."""
    query = (
        select(Grant, Integration.name)
        .join(Integration, Integration.id == Grant.integration_id)
        .where(Grant.slack_user_id == slack_user_id, Grant.state == ACTIVE)
        .order_by(Grant.ends_at, Grant.id)
    )
    return [row_of(g, name) for g, name in session.execute(query)]


def payload_fields(grant: Grant, integration: Integration) -> dict[str, Any]:
    """What every request about one grant names it by (end, extend)."""
    return {
        "grant_id": grant.id,
        "integration_id": grant.integration_id,
        "integration": integration.name,
        "user_name": grant.user_name,
        "group": grant.group_name,
    }


def row_of(grant: Grant, integration: str) -> GrantRow:
    return from_row(
        GrantRow,
        grant,
        integration=integration,
        group=grant.group_name,
        breakglass=bool(grant.breakglass),
    )


# --- what a sync saw --------------------------------------------------------------------------
def reconcile_with_store(session: Session, integration_id: int, read_from: datetime) -> int:
    """After a sync that began reading IAM at `read_from`: an active grant whose membership is
    no longer in IAM ends as "removed outside RoleUp", whose group is gone as "group gone",
    whose user is gone as "user gone". Grants made since `read_from` are left for the next
    sync. Returns how many ended."""
    grants = session.scalars(
        select(Grant).where(
            Grant.integration_id == integration_id,
            Grant.state == ACTIVE,
            Grant.starts_at < read_from,
        )
    ).all()
    if not grants:
        return 0
    users = {g.user_name for g in grants}
    accounts = dict(
        session.execute(
            select(Account.user_name, Account.id).where(
                Account.integration_id == integration_id, Account.user_name.in_(users)
            )
        ).all()
    )
    groups = set(session.scalars(select(Group.name).where(Group.integration_id == integration_id)))
    members = {
        (account_id, name)
        for account_id, name in session.execute(
            select(Membership.account_id, Group.name)
            .join(Group, Group.id == Membership.group_id)
            .where(Membership.account_id.in_(list(accounts.values())))
        )
    }
    ended = 0
    for grant in grants:
        account_id = accounts.get(grant.user_name)
        if account_id is None:
            reason = USER_GONE
        elif grant.group_name not in groups:
            reason = GROUP_GONE
        elif (account_id, grant.group_name) not in members:
            reason = REMOVED_OUTSIDE
        else:
            continue
        ended += close(session, [grant.id], reason, from_states=(ACTIVE,))
    return ended
