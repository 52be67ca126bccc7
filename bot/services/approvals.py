"""Requests and their approval state machine: submit, decide, run at most once, retry, expire.

A Request row is the state machine:

    pending -> approved | denied | expired | cancelled
    pending -> failed                      (its integration turned read-only: never Retried)
    (a request needing N approvers: each Approve adds one request_approvals row, unique per
    person; pending -> approved happens only in the UPDATE that sees N distinct rows)
    approved -> running -> done | failed
    failed -> running                      (an approver's Retry, within the retry window)

Every move is one conditional UPDATE (`... WHERE id = :id AND state IN (:from)`) whose rowcount
says who won, so double clicks, Slack retries and two approvers clicking at once execute a
request once. A running request holds a lease (owner, expiry) that its process renews while it
runs; another process takes it over only once the lease has expired, and the old owner's late
outcome cannot overwrite the new one. The row is committed before anything is posted to Slack,
and Slack failures are logged and audited, never allowed to lose a request's state.

What each kind carries and does lives in bot.services.request_kinds; who must approve and who
may decide lives in bot.services.policy. This module only moves rows.

Slack is reached only through an `ApprovalNotifier` (core.approvals_notifier, set by
create_app); without one (the CLI), notices are only logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, raiseload

from bot.log_context import log_context
from bot.metrics import note_request_move
from bot.services import audit, lifecycle, policy, reasons
from bot.services.aws import WORST_CALL_SECONDS
from bot.services.container import Core
from bot.services.errors import (  # re-exported for handlers
    IntegrationNotFound,
    NotAllowed,
    RequestConflict,
    RequestNotFound,
    RoleUpError,
)
from bot.services.integration_handle import Handles, IntegrationHandle
from bot.services.policy import (
    MemberOf,
    Privileges,
    Recipients,
    RequestFacts,
    Standing,
    Tally,
)
from bot.services.reasons import NONE, Justification, ReasonRequired
from bot.services.request_kinds import (
    OffboardPayload,
    Payload,
    RequestKind,
    RunContext,
    kind_for,
    kind_of,
)
from bot.services.step_reports import BackgroundReporter
from storage.db import read_again_if_ended
from storage.erasure import purge
from storage.models import (
    Account,
    AttachedPolicy,
    Group,
    Integration,
    Request,
    RequestApproval,
    utcnow,
)
from storage.updates import guarded_update

logger = logging.getLogger(__name__)
__all__ = ["NotAllowed", "RequestConflict", "RequestNotFound"]  # for handlers mapping them

PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
EXPIRED = "expired"
CANCELLED = "cancelled"
RUNNING = "running"
DONE = "done"
FAILED = "failed"

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({APPROVED, DENIED, EXPIRED, CANCELLED, FAILED}),
    APPROVED: frozenset({RUNNING}),
    RUNNING: frozenset({DONE, FAILED, RUNNING}),  # running -> running: a recovery takes over
    FAILED: frozenset({RUNNING}),
    DENIED: frozenset(),
    EXPIRED: frozenset(),
    CANCELLED: frozenset(),
    DONE: frozenset(),
}
AUTO_APPROVER = "policy"
UNEXPECTED = "an unexpected error stopped it (details are in the server log)"
# A lease outlives the slowest AWS call, so a live runner in the middle of one keeps it.
LEASE = timedelta(seconds=WORST_CALL_SECONDS + 60)
RENEW_EVERY_SECONDS = 30.0
# An approved request nobody claimed (its process died between the click and the run).
UNCLAIMED_AFTER = timedelta(minutes=5)

REQUESTS = cast(Table, Request.__table__)
StepCallback = Callable[[str, str], None]
TOLD_EVENTS = (DONE, FAILED, DENIED, EXPIRED, "not_posted")


def new_request_id() -> str:
    """A request's id, chosen before it is filed when a command checks with AWS first: the
    checks then run in the AWS session tagged with the request they are for, and an
    auto-approved request reuses that session instead of assuming the role again."""
    return str(uuid.uuid4())


def new_owner() -> str:
    """This process's lease owner name: host pid and a random part (unique per run)."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


class ApprovalNotifier(Protocol):
    """How the service talks to people; the Slack implementation is bot.slack.approval_messages."""

    def post_request(self, request: Request, to: Recipients) -> list[dict[str, str]]:
        """Post the approval message; return [{"channel", "ts"}] of what was posted."""

    def refresh(self, request: Request) -> None:
        """Re-render every approval message of the request from its current row."""

    def tell_requester(self, request: Request, event: str, detail: str = "") -> None:
        """Tell the requester about `event` (one of TOLD_EVENTS), rendered from the row."""

    def remind(self, request: Request) -> None: ...


class LoggingNotifier:
    """For processes without Slack (the CLI): every notice goes to the log only."""

    def post_request(self, request: Request, to: Recipients) -> list[dict[str, str]]:
        logger.info("request %s needs approval (no Slack client to post it)", request.id)
        return []

    def refresh(self, request: Request) -> None:
        logger.info("request %s is %s", request.id, request.state)

    def tell_requester(self, request: Request, event: str, detail: str = "") -> None:
        logger.info("request %s: %s %s", request.id, event, detail)

    def remind(self, request: Request) -> None:
        logger.info("request %s is still pending", request.id)


def notifier_of(core: Core) -> ApprovalNotifier:
    found = core.approvals_notifier
    return found if found is not None else LoggingNotifier()


# --- the state machine ---------------------------------------------------------------------
def move(
    session: Session,
    request_id: str,
    *,
    from_states: Iterable[str],
    to: str,
    where: Iterable[Any] = (),
    **values: Any,
) -> bool:
    """The one way a request changes state: a conditional UPDATE. True if this caller won."""
    return _moved(session, request_id, from_states, (to,), where, values) is not None


def _moved(
    session: Session,
    request_id: str,
    from_states: Iterable[str],
    path: Sequence[str],
    where: Iterable[Any],
    values: dict[str, Any],
    returning: Sequence[Any] = (),
) -> Sequence[Any] | None:
    """`move` along `path` in one UPDATE (each step a transition, counted as made), returning
    `returning` of the row if this caller won."""
    sources = tuple(from_states)
    for source in sources:
        for before, after in zip((source, *path), path, strict=False):
            if after not in TRANSITIONS[before]:
                raise ValueError(f"a request cannot go from {before} to {after}")
    # On the table, not the mapped class: the ORM's handling of an UPDATE is most of what this
    # one costs, and nothing in the session is to be synchronised (every session is short).
    statement = (
        update(REQUESTS)
        .where(Request.id == request_id, Request.state.in_(sources), *where)
        .values(state=path[-1], updated_at=utcnow(), **values)
        .returning(Request.kind, Request.created_at, *returning)
    )
    moved = session.execute(statement).all()
    if len(moved) != 1:
        return None
    kind, created_at, *returned = moved[0]
    for to in path:
        note_request_move(session, kind, to, created_at)  # counted in /metrics once committed
    return returned


def load(core: Core, request_id: str) -> Request:
    with core.sessions() as session:
        row = session.get(Request, request_id)
        if row is None:
            raise RequestNotFound("That request no longer exists.")
        return row


# The click's reads, made once: building a statement and its cache key each time cost more
# than SQLite took to run it.
_REQUEST_FOR_DECISION = (
    select(Request)
    .where(Request.id == bindparam("request_id"))
    .options(raiseload(Request.approvals))
)
_INTEGRATIONS = select(Integration).where(Integration.id.in_(bindparam("ids", expanding=True)))
_ATTACHED_TO_GROUPS = (
    select(Group.name, AttachedPolicy.policy_arn, AttachedPolicy.policy_name)
    .join(AttachedPolicy, AttachedPolicy.group_id == Group.id)
    .where(Group.integration_id.in_(bindparam("ids", expanding=True)))
)


def integrations_of(session: Session, request: Request) -> list[Integration]:
    kind = kind_of(request.kind)
    ids = kind.integration_ids(kind.load(request.payload or {}))
    rows = session.scalars(_INTEGRATIONS, {"ids": ids}).all()
    by_id = {row.id: row for row in rows}
    return [by_id[i] for i in ids if i in by_id]


def privileges_of(session: Session, integrations: Sequence[Integration]) -> Privileges:
    """Privileged policies and groups of these integrations: the listed ones, and every group
    the last sync saw with a privileged policy attached."""
    listed = {p for i in integrations for p in (i.privileged_policies or [])}
    groups = {g for i in integrations for g in (i.privileged_groups or [])}
    if listed:
        found = session.execute(_ATTACHED_TO_GROUPS, {"ids": [i.id for i in integrations]})
        privileged = Privileges(policies=frozenset(listed))
        groups |= {name for name, arn, pname in found if privileged.policy(arn or pname)}
    return Privileges(policies=frozenset(listed), groups=frozenset(groups))


def facts(
    row: Request,
    kind: RequestKind[Any],
    payload: Any,
    managers_too: bool,
    beneficiaries: frozenset[str] = frozenset(),
) -> RequestFacts:
    return RequestFacts(
        kind=row.kind,
        requester=row.requester,
        invite_creator=kind.invite_creator(payload),
        managers_too=managers_too,
        beneficiaries=beneficiaries,
    )


def beneficiaries_of(session: Session, kind: RequestKind[Any], payload: Any) -> frozenset[str]:
    """The Slack people whose own account the request gives (or keeps) access to: the person
    it was asked for, and whoever the account is linked to now (a link made since counts)."""
    access = kind.access_for(payload)
    if access is None:
        return frozenset()
    linked = session.scalar(
        select(Account.slack_user_id).where(
            Account.integration_id == access.integration_id,
            Account.user_name == access.user_name,
        )
    )
    return frozenset(p for p in (access.slack_user_id, linked) if p)


# --- submit --------------------------------------------------------------------------------
def submit(
    core: Core,
    payload: Payload,
    *,
    requester: str,
    secret: str | None = None,
    response_url: str | None = None,
    why: Justification = NONE,
    raise_errors: bool = True,
    request_id: str | None = None,
    handles: Sequence[IntegrationHandle] = (),
) -> Request:
    """Record a request; post it for approval, or (when the policy needs none) run it at once.

    Every change goes through here, approved or not, so the audit has one trail. An
    auto-approved request that fails raises the RoleUpError that stopped it (the row is left
    `failed` with the reason), or with `raise_errors=False` is returned `failed`; a request
    waiting for approval is returned `pending`. `request_id` (from new_request_id) and the
    `handles` the caller's checks opened for it let a request run at once go on in the same AWS
    session.
    """
    kind = kind_for(payload)
    why = reasons.clean(why.reason, why.ticket)  # whoever built it, only a checked one is stored
    now = utcnow()
    with core.sessions.begin() as session:
        row, to = _insert(core, session, kind, payload, requester, secret, now, why, request_id)
        row.response_url = response_url
        announce = _announced_to(core, session, kind, payload) if to is None else None
    with log_context(request_id=row.id, actor=requester):
        logger.info("request %s (%s) submitted", row.id, row.kind)
        if to is None:
            if announce is not None and not announce.empty:
                # Nobody decides it, but the approvers see it run, step by step.
                _post(core, row, announce)
            return execute(
                core,
                row.id,
                actor=requester,
                from_states=(APPROVED,),
                raise_errors=raise_errors,
                handles=handles,
            )
        _post(core, row, to)
        return load(core, row.id)


def _announced_to(
    core: Core, session: Session, kind: RequestKind[Any], payload: Any
) -> Recipients | None:
    """Where a request needing no approver is still posted (its kind says so): the approvals
    channel of its integrations, else their approvers by DM."""
    if not kind.announced:
        return None
    ids = kind.integration_ids(payload)
    rows = session.scalars(select(Integration).where(Integration.id.in_(ids))).all()
    return policy.recipients(kind.name, rows, core.settings.admins)


def _insert(
    core: Core,
    session: Session,
    kind: RequestKind[Any],
    payload: Any,
    requester: str,
    secret: str | None,
    now: datetime,
    why: Justification,
    request_id: str | None = None,
) -> tuple[Request, Recipients | None]:
    ids = kind.integration_ids(payload)
    rows = session.scalars(select(Integration).where(Integration.id.in_(ids))).all()
    if not ids or len(rows) != len(ids):
        raise IntegrationNotFound("That integration no longer exists.")
    names = sorted(r.name for r in rows)
    if not why.reason and policy.reason_required(rows, kind.name):
        raise ReasonRequired([r.name for r in rows if r.require_reason])
    change = kind.change(payload)
    privileges = privileges_of(session, rows)
    need = policy.needs_approval(change, rows, privileges)
    managers_too = policy.managers_may_complete(change, rows, privileges)
    excluded = {
        requester,
        kind.invite_creator(payload) or "",
        *beneficiaries_of(session, kind, payload),
    }
    to = None
    if need.required:
        to = policy.recipients(
            kind.name, rows, core.settings.admins, managers_too=managers_too, excluded=excluded
        )
        if to.empty:
            raise NotAllowed(
                f"Nobody can approve requests for integration {', '.join(names)} "
                "but the requester: ask an admin to set its approvers or approvals channel."
            )
        _check_enough_deciders(kind, rows, core.settings.admins, need, excluded, managers_too)
    row = Request(
        id=request_id or new_request_id(),
        integration_id=kind.row_integration_id(payload),
        kind=kind.name,
        payload={**kind.dump(payload), "why": need.why, "managers_too": managers_too},
        secret_ciphertext=core.require_box().encrypt(secret) if secret else None,
        requester=requester,
        state=PENDING if need.required else APPROVED,
        decided_by=None if need.required else AUTO_APPROVER,
        decided_at=None if need.required else now,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(hours=core.settings.request_ttl_hours)
        if need.required
        else None,
        steps=[],
        reason=why.reason,
        ticket=why.ticket,
        approvals_required=need.approvals if need.required else 1,
        approvals=[],
    )
    session.add(row)
    detail: dict[str, Any] = {
        "kind": kind.name,
        "approval": "required" if need.required else "not required",
        "why": need.why,
    }
    if need.required and need.approvals > 1:
        detail["approvals_required"] = need.approvals
    if why.reason:
        detail["reason"] = why.reason
    if why.ticket:
        detail["ticket"] = why.ticket
    detail.update(kind.audit_detail(payload))
    _audit(session, row, actor=requester, action="request.created", detail=detail)
    return row, to


def check_reason(core: Core, integration_ids: Iterable[int], why: Justification) -> None:
    """ReasonRequired when a request on these integrations would be refused for want of a
    reason: surfaces ask it early (before reading AWS, or inline in a modal); submit checks it
    again whatever the surface."""
    if why.reason:
        return
    with core.sessions() as session:
        rows = session.scalars(
            select(Integration).where(Integration.id.in_(list(integration_ids)))
        ).all()
        if policy.reason_required(rows):
            raise ReasonRequired([r.name for r in rows if r.require_reason])


def _check_enough_deciders(
    kind: RequestKind[Any],
    rows: Sequence[Integration],
    admins: Collection[str],
    need: policy.Need,
    excluded: set[str],
    managers_too: bool,
) -> None:
    """A request needing N approvers that fewer than N listed people could ever decide would
    wait forever: refused at once. (User groups may hold anyone: they are not counted.)"""
    if need.approvals <= 1:
        return
    for integration in rows:
        entries = policy.deciders(kind.name, integration, admins, managers_too=managers_too)
        if any(policy.is_usergroup(e) for e in entries):
            continue
        people = [e for e in entries if e not in excluded]
        if len(people) < need.approvals:
            raise NotAllowed(
                f"This needs {need.approvals} different approvers, but integration "
                f"{integration.name} lists only {len(people)} who may decide it: ask an admin "
                "to add approvers."
            )


def _post(core: Core, row: Request, to: Recipients) -> None:
    try:
        posted = notifier_of(core).post_request(row, to)
    except Exception as exc:  # Slack down or a notifier bug must not lose the request
        logger.warning("posting the approval message of request %s failed: %s", row.id, exc)
        _note_failure(core, row, "request.post_failed", f"{type(exc).__name__}: {exc}"[:300])
        _tell(core, row, "not_posted", str(exc)[:200])
        return
    if not posted:
        return
    with core.sessions.begin() as session:
        stored = session.get(Request, row.id)
        if stored is not None:
            stored.message_channel = posted[0]["channel"]
            stored.message_ts = posted[0]["ts"]
            # Every copy (one per channel or DM) is re-rendered on each change.
            stored.payload = {**stored.payload, "messages": posted}


def was_posted(row: Request) -> bool:
    """Did at least one approval message reach Slack?"""
    return bool(row.payload.get("messages"))


def _note_failure(core: Core, row: Request, action: str, reason: str) -> None:
    with core.sessions.begin() as session:
        _audit(
            session, row, actor="roleup", action=action, outcome="error", detail={"error": reason}
        )


# --- decide --------------------------------------------------------------------------------
def decide(
    core: Core,
    request_id: str,
    *,
    approver: str,
    approve: bool,
    member_of: MemberOf | None = None,
    execute_now: bool = True,
) -> Request:
    """Approve or deny once. Raises NotAllowed (self-approval, not theirs to decide),
    RequestNotFound, or RequestConflict (already decided, expired, running)."""
    with log_context(request_id=request_id, actor=approver):
        return _decide(core, request_id, approver, approve, member_of, execute_now)


def _decide(
    core: Core,
    request_id: str,
    approver: str,
    approve: bool,
    member_of: MemberOf | None,
    execute_now: bool,
    *,
    again: bool = True,
) -> Request:
    # What the decision reads (the row, its integrations, who may decide) is one session.
    seen = _read_for_decision(core, request_id, PENDING)
    row = seen.row
    _check_decider(core, seen, approver, member_of, action="request.decide_refused")
    if row.state != PENDING:
        raise RequestConflict(already_text(row))
    now = utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        _expire(core, request_id, now)
        raise RequestConflict("This request has expired: ask for it again.")
    if approve:
        row = _with_quorum_as_of_now(core, seen)
    if approve and row.approvals_required > 1:
        return _approve_towards_quorum(
            core, row, approver, now, execute_now=execute_now, member_of=member_of
        )
    if approve and execute_now:
        ran = _approve_and_run(core, seen, approver, now)
        if ran is not None:
            return ran
        # Still pending, but the claim saw what the decision read change (its integration
        # edited, an approver taken off, the quorum raised): decided again from a new read.
        if again:
            return _decide(core, request_id, approver, approve, member_of, execute_now, again=False)
        raise RequestConflict(
            "This request's integration changed as you clicked: look at it again and click "
            "once more."
        )
    to = APPROVED if approve else DENIED
    with core.sessions.begin() as session:
        won = move(
            session,
            request_id,
            from_states=(PENDING,),
            to=to,
            where=(or_(Request.expires_at.is_(None), Request.expires_at > now),),
            decided_by=approver,
            decided_at=now,
            **({} if approve else {"secret_ciphertext": None, "outcome": "Denied."}),
        )
        if won:
            _audit(session, row, actor=approver, action=f"request.{to}")
    if not won:
        raise RequestConflict(already_text(load(core, request_id)))
    if not approve and row.secret_ciphertext:
        _purge_secrets(core)
    row = load(core, request_id)
    _refresh(core, row)
    if not approve:
        _tell(core, row, DENIED)
    return row


def _approve_and_run(core: Core, seen: _Seen, approver: str, now: datetime) -> Request | None:
    """Approved and run at once: the decision and the claim are one committed transaction
    before the first AWS call, and the run starts from the row it claimed, with handles opened
    on the integrations the decision read (the message goes straight to "running"). None if
    the request is still pending but the claim lost: what the decision read changed since."""
    owner = new_owner()
    with core.sessions.begin() as session:
        claimed = _approved_and_claimed(session, seen, approver, owner, now)
    if claimed is None:
        fresh = load(core, seen.row.id)
        if fresh.state == PENDING:
            return None
        raise RequestConflict(already_text(fresh))
    opened = [
        IntegrationHandle(core, i, actor=approver, request_id=claimed.id) for i in seen.integrations
    ]
    with log_context(integration=_integration_name(claimed)):
        return _run_loaded(core, claimed, owner, actor=approver, raise_errors=False, handles=opened)


def _approved_and_claimed(
    session: Session, seen: _Seen, approver: str, owner: str, now: datetime
) -> Request | None:
    """pending -> approved -> running as one guarded UPDATE, under `owner`'s lease, audited as
    both moves (one INSERT); the row as claimed if this caller won, None if it lost (decided
    already, expired, its quorum raised past one approver, or one of its integrations edited
    or removed since the decision read them: who may decide it, its quorum and what it runs
    against are read from them). Its approvals are none: a request gets them only once it
    needs more than one, and its quorum is never lowered."""
    row = seen.row
    attributes = Request.__mapper__.column_attrs
    returned = _moved(
        session,
        row.id,
        (PENDING,),
        (APPROVED, RUNNING),
        where=(
            or_(Request.expires_at.is_(None), Request.expires_at > now),
            Request.approvals_required <= 1,
            _as_read(seen.integrations),
        ),
        values={
            "decided_by": approver,
            "decided_at": now,
            "outcome": None,
            "lease_owner": owner,
            "lease_expires_at": utcnow() + LEASE,
        },
        returning=[attribute.columns[0] for attribute in attributes],
    )
    if returned is None:
        return None
    values = {attribute.key: value for attribute, value in zip(attributes, returned, strict=True)}
    claimed = Request(**values, approvals=[])
    audit.record_all(
        session,
        [
            _audit_values(claimed, actor=approver, action=f"request.{APPROVED}"),
            _audit_values(claimed, actor=approver, action="request.running"),
        ],
    )
    return claimed


def _as_read(integrations: Sequence[Integration]) -> Any:
    """True while each of `integrations` is in the store as it was read (every edit of one
    moves its updated_at)."""
    unchanged = (
        select(func.count())
        .select_from(Integration)
        .where(
            or_(
                false(),
                *(
                    and_(Integration.id == i.id, Integration.updated_at == i.updated_at)
                    for i in integrations
                ),
            )
        )
        .scalar_subquery()
    )
    return unchanged == len(integrations)


def _with_quorum_as_of_now(core: Core, seen: _Seen) -> Request:
    """The quorum is fixed when a request is made and never lowered; but a grant whose group
    turned privileged while it waited (a policy attached, seen at sync; the group listed) needs
    what a privileged grant needs now, or one approver would let it through."""
    row = seen.row
    kind = kind_of(row.kind)
    change = kind.change(kind.load(row.payload or {}))
    need = policy.needs_approval(change, seen.integrations, seen.privileges)
    wanted = need.approvals if need.required else 1
    if wanted <= row.approvals_required:
        return row
    with core.sessions.begin() as session:
        raised = guarded_update(
            session,
            Request,
            [Request.id == row.id, Request.state == PENDING, Request.approvals_required < wanted],
            approvals_required=wanted,
        )
        if raised == 1:
            _audit(
                session,
                row,
                actor="roleup",
                action="request.quorum_raised",
                detail={"approvals_required": wanted, "why": need.why},
            )
    return load(core, row.id)


def _approve_towards_quorum(
    core: Core,
    row: Request,
    approver: str,
    now: datetime,
    *,
    execute_now: bool,
    member_of: MemberOf | None = None,
) -> Request:
    """One approval of a request needing N distinct approvers: record it (once per person,
    and only while fewer than N count), then move pending -> approved only if the UPDATE
    itself sees N distinct approvals. So the quorum is exactly N people, however many click
    at once: a late click is told the request has its approvals, never counted as an extra."""
    # Earlier approvals whose approver may no longer decide are dropped first, so they hold
    # no place in the quorum this approval is counted against.
    unsure = _drop_approvals_no_longer_allowed(core, row, approver, member_of)
    with core.sessions.begin() as session:
        added = _add_approval(session, row.id, approver, now, unsure)
        if added:
            _audit(
                session,
                row,
                actor=approver,
                action="request.approval_added",
                detail={"approvals_required": row.approvals_required},
            )
    if not added:
        raise RequestConflict(_not_added_text(load(core, row.id), approver))
    # Counted in a transaction of its own, after this approval is committed: of two approvals
    # landing together, at least the later count sees both (each one's row is committed
    # before its count starts), and the conditional UPDATE lets exactly one of them win.
    with core.sessions.begin() as session:
        won = move(
            session,
            row.id,
            from_states=(PENDING,),
            to=APPROVED,
            where=(
                or_(Request.expires_at.is_(None), Request.expires_at > now),
                _approvals_counted(unsure) >= Request.approvals_required,
            ),
            decided_by=approver,
            decided_at=now,
        )
        if won:
            approvers = session.scalars(
                select(RequestApproval.approver)
                .where(RequestApproval.request_id == row.id)
                .order_by(RequestApproval.decided_at)
            ).all()
            _audit(
                session,
                row,
                actor=approver,
                action="request.approved",
                detail={"approvers": list(approvers)},
            )
    row = load(core, row.id)
    _refresh(core, row)
    if won and execute_now:
        return execute(core, row.id, actor=approver)
    return row


def _drop_approvals_no_longer_allowed(
    core: Core, row: Request, approver: str, member_of: MemberOf | None
) -> list[str]:
    """An earlier approval counts only while its approver may still decide: one taken off the
    approvers since, or whose Slack account became a guest or was deactivated, is dropped
    (and audited) before the quorum is counted. Returns the approvers whose standing Slack
    could not tell now: not counted this time, but kept."""
    with core.sessions() as session:
        earlier = session.scalars(
            select(RequestApproval.approver).where(
                RequestApproval.request_id == row.id, RequestApproval.approver != approver
            )
        ).all()
        deciding = _deciding(session, row, integrations_of(session, row))
    stale: list[str] = []
    unsure: list[str] = []
    for who in earlier:
        standing = core.people.standing(who)
        decision = deciding.may_decide(core, who, member_of, standing)
        if not decision.allowed:
            (unsure if standing == Standing.UNKNOWN else stale).append(who)
    if not stale:
        return unsure
    with core.sessions.begin() as session:
        session.execute(
            delete(RequestApproval).where(
                RequestApproval.request_id == row.id, RequestApproval.approver.in_(stale)
            )
        )
        for who in stale:
            _audit(session, row, actor=who, action="request.approval_dropped")
    return unsure


def _not_added_text(fresh: Request, approver: str) -> str:
    if fresh.state != PENDING:
        return already_text(fresh)
    if approver in {a.approver for a in fresh.approvals}:
        missing = tally_of(fresh).missing
        return (
            f"You have already approved this request: it needs {missing} more approval"
            f"{'s' if missing != 1 else ''} from someone else."
        )
    return (
        f"This request already has the {fresh.approvals_required} approvals it needs: "
        "it is starting."
    )


def _add_approval(
    session: Session, request_id: str, approver: str, now: datetime, unsure: Sequence[str] = ()
) -> bool:
    """Insert this person's approval while the request is pending and fewer approvals than
    it needs count; False if they already approved it (the primary key), it is no longer
    pending or its quorum is full. One statement on SQLite (which writes one at a time); on
    PostgreSQL the request's row is locked first, so two approvals landing together are
    counted one after the other and never both fill the last place."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(select(Request.id).where(Request.id == request_id).with_for_update())
    columns = RequestApproval.__table__.c
    chosen = select(
        literal(request_id, columns.request_id.type),
        literal(approver, columns.approver.type),
        literal(now, columns.decided_at.type),
    ).where(
        exists().where(
            Request.id == request_id,
            Request.state == PENDING,
            _approvals_counted(unsure) < Request.approvals_required,
        )
    )
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = make(RequestApproval).from_select(["request_id", "approver", "decided_at"], chosen)
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... SELECT.
    inserted = session.execute(
        statement.on_conflict_do_nothing().returning(RequestApproval.approver)
    ).first()
    return inserted is not None


def _approvals_counted(excluded: Sequence[str] = ()) -> Any:
    """Distinct approvals of the request being updated; its requester's (and `excluded`)
    never count (the primary key makes each approver one row)."""
    return (
        select(func.count())
        .select_from(RequestApproval)
        .where(
            RequestApproval.request_id == Request.id,
            RequestApproval.approver != Request.requester,
            RequestApproval.approver.not_in(list(excluded)),
        )
        .correlate(Request)
        .scalar_subquery()
    )


def tally_of(row: Request) -> Tally:
    """The approvals that count towards the request's quorum (shown on its message)."""
    try:
        kind = kind_of(row.kind)
        creator = kind.invite_creator(kind.load(row.payload or {}))
    except RoleUpError:
        creator = None
    facts_ = RequestFacts(kind=row.kind, requester=row.requester, invite_creator=creator)
    return policy.tally((a.approver for a in row.approvals), row.approvals_required or 1, facts_)


def retry(
    core: Core, request_id: str, *, approver: str, member_of: MemberOf | None = None
) -> Request:
    """Run a failed request again (offboarding resumes where it stopped), within the retry
    window; after it, the change needs a new request (and a new approval)."""
    with log_context(request_id=request_id, actor=approver):
        return _retry(core, request_id, approver, member_of)


def _retry(core: Core, request_id: str, approver: str, member_of: MemberOf | None) -> Request:
    seen = _read_for_decision(core, request_id, FAILED)
    row = seen.row
    _check_decider(core, seen, approver, member_of, action="request.retry_refused")
    if row.state != FAILED:
        raise RequestConflict(already_text(row))
    if not was_approved(row):
        # Failed while pending (its integration turned read-only): a Retry would run what
        # nobody, or fewer than its quorum, approved.
        raise RequestConflict(already_text(row))
    window = timedelta(hours=core.settings.retry_window_hours)
    if row.updated_at + window <= utcnow():
        with core.sessions.begin() as session:
            _audit(session, row, actor=approver, action="request.retry_refused", outcome="stale")
        raise RequestConflict(
            f"This request failed more than {core.settings.retry_window_hours:g} hours ago: "
            "make a new request."
        )
    # Audited as retried in the claim's transaction: of two Retry clicks at once, only the one
    # that runs it is (the other is told what became of it).
    owner = new_owner()
    with core.sessions.begin() as session:
        claimed = _claim(
            session,
            request_id,
            owner,
            actor=approver,
            from_states=(FAILED,),
            where=(Request.updated_at > utcnow() - window,),
            first="request.retried",
        )
    if claimed is None:
        raise RequestConflict(already_text(load(core, request_id)))
    with log_context(integration=_integration_name(claimed)):
        return _run_loaded(core, claimed, owner, actor=approver, raise_errors=False, handles=())


@dataclass(frozen=True)
class _Seen:
    """A request and what deciding it reads, read in one session: its integrations, their
    privileged policies and groups, and who may decide it (asked again at every click)."""

    row: Request
    integrations: list[Integration]
    privileges: Privileges
    deciding: _Deciding


def _read_for_decision(core: Core, request_id: str, live_state: str) -> _Seen:
    """Read the request for a click. While it is in `live_state` (the state the click acts
    on), an integration removed since refuses it, never run against whatever integration came
    after (ids are never reused; the name is checked too). It only reads: on a connection the
    server had ended unseen, it is read again on a new one (storage.db.read_again_if_ended)."""
    return read_again_if_ended(lambda: _read_once_for_decision(core, request_id, live_state))


def _read_once_for_decision(core: Core, request_id: str, live_state: str) -> _Seen:
    with core.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Nothing is written, and each statement is consistent on its own (as in a
            # transaction at READ COMMITTED): no BEGIN, and no ROLLBACK as the connection goes
            # back to the pool, two of the read's six round trips. SQLite opens no transaction
            # for a read anyway.
            connection.execution_options(isolation_level="AUTOCOMMIT")
        with core.sessions(bind=connection) as session:
            # Without its approvals (a statement of their own): deciding reads none of them,
            # and what runs or is shown next reads the row again, or is the row its claim
            # returned.
            row = session.scalars(_REQUEST_FOR_DECISION, {"request_id": request_id}).first()
            if row is None:
                raise RequestNotFound("That request no longer exists.")
            integrations = integrations_of(session, row)
            if row.state == live_state:
                _require_its_integrations(row, integrations)
            privileges = privileges_of(session, integrations)
            deciding = _deciding(session, row, integrations, privileges)
    return _Seen(row, integrations, privileges, deciding)


def _require_its_integrations(row: Request, integrations: Sequence[Integration]) -> None:
    kind = kind_of(row.kind)
    names = {integration.id: integration.name for integration in integrations}
    for integration_id, name in kind.integration_refs(kind.load(row.payload or {})):
        lifecycle.require_same_name(names.get(integration_id), name)


def _check_decider(
    core: Core, seen: _Seen, approver: str, member_of: MemberOf | None, *, action: str
) -> None:
    row = seen.row
    if not seen.integrations and row.state != PENDING:
        # Its integration went away after the decision (an approved removal, typically):
        # the late clicker is told what became of the request, not that nobody may decide.
        raise RequestConflict(already_text(row))
    decision = seen.deciding.may_decide(core, approver, member_of, core.people.standing(approver))
    if not decision.allowed:
        with core.sessions.begin() as session:
            _audit(
                session,
                row,
                actor=approver,
                action=action,
                outcome="refused",
                detail={"reason": decision.reason.value},
            )
        raise NotAllowed(decision.text or "This request is not yours to decide.")


def waiting_for(
    core: Core, decider: str, member_of: MemberOf | None = None, *, limit: int = 10
) -> list[Request]:
    """Pending requests `decider` may decide now (oldest first), as the policy says for each:
    the App Home's "Waiting for you". Nothing is audited: this only reads."""
    with core.sessions() as session:
        rows = session.scalars(
            select(Request).where(Request.state == PENDING).order_by(Request.created_at)
        ).all()
    mine: list[Request] = []
    standing = core.people.standing(decider)
    for row in rows:
        if len(mine) >= limit:
            break
        with core.sessions() as session:
            try:
                integrations = integrations_of(session, row)
                deciding = _deciding(session, row, integrations)
            except RoleUpError:  # a damaged payload: nobody decides it from here
                continue
        if not integrations:
            continue
        if deciding.may_decide(core, decider, member_of, standing).allowed:
            mine.append(row)
    return mine


@dataclass(frozen=True)
class _Deciding:
    """What the policy reads to say who may decide a request: its integrations and facts."""

    integrations: list[Integration]
    facts: RequestFacts

    def may_decide(
        self, core: Core, who: str, member_of: MemberOf | None, standing: Standing
    ) -> policy.Decision:
        return policy.may_decide(
            who,
            self.facts,
            self.integrations,
            core.settings.admins,
            member_of or core.people.member_of,
            standing,
        )


def _deciding(
    session: Session,
    row: Request,
    integrations: list[Integration],
    privileges: Privileges | None = None,
) -> _Deciding:
    kind = kind_of(row.kind)
    payload = kind.load(row.payload or {})
    if privileges is None:
        privileges = privileges_of(session, integrations)
    # Asked again at every click: a group that turned privileged since the request was made
    # (or a setting turned on) takes the managers' say away.
    managers_too = policy.managers_may_complete(kind.change(payload), integrations, privileges)
    beneficiaries = beneficiaries_of(session, kind, payload)
    return _Deciding(integrations, facts(row, kind, payload, managers_too, beneficiaries))


def was_approved(row: Request) -> bool:
    """False for a request failed while it still waited for its approvers."""
    return row.decided_by is not None


def already_text(row: Request) -> str:
    by = f" by <@{row.decided_by}>" if row.decided_by and row.decided_by != AUTO_APPROVER else ""
    if row.state == FAILED and not was_approved(row):
        return f"This request failed before it was approved: {row.outcome or ''}".strip()
    return {
        APPROVED: f"This request was already approved{by}.",
        RUNNING: f"This request was already approved{by} and is running.",
        DONE: f"This request was already approved{by} and is done.",
        FAILED: f"This request was approved{by} and failed: use Retry.",
        DENIED: f"This request was already denied{by}.",
        EXPIRED: "This request has expired: ask for it again.",
        CANCELLED: "This request was cancelled.",
        PENDING: "This request is still waiting for a decision.",
    }.get(row.state, f"This request is {row.state}.")


# --- execute once, under a lease -----------------------------------------------------------
def execute(
    core: Core,
    request_id: str,
    *,
    actor: str,
    from_states: Iterable[str] = (APPROVED,),
    raise_errors: bool = False,
    where: Iterable[Any] = (),
    handles: Sequence[IntegrationHandle] = (),
) -> Request:
    """Claim the request (-> running, with this process's lease) and run it; a caller that
    loses the claim returns the row as it is, without running anything."""
    owner = new_owner()
    with core.sessions.begin() as session:
        claimed = _claim(
            session, request_id, owner, actor=actor, from_states=from_states, where=where
        )
    if claimed is None:
        return load(core, request_id)
    # The row as the claim's transaction read it: no second read of it.
    with log_context(request_id=request_id, integration=_integration_name(claimed), actor=actor):
        return _run_loaded(
            core, claimed, owner, actor=actor, raise_errors=raise_errors, handles=handles
        )


def _claim(
    session: Session,
    request_id: str,
    owner: str,
    *,
    actor: str,
    from_states: Iterable[str],
    where: Iterable[Any] = (),
    first: str | None = None,
) -> Request | None:
    """Move the request to running under `owner`'s lease (audited, after `first` if given);
    the row as claimed if this caller won, None if it lost."""
    won = move(
        session,
        request_id,
        from_states=from_states,
        to=RUNNING,
        where=where,
        outcome=None,
        lease_owner=owner,
        lease_expires_at=utcnow() + LEASE,
    )
    if not won:
        return None
    row = session.get(Request, request_id)
    assert row is not None
    if first is not None:
        _audit(session, row, actor=actor, action=first)
    _audit(session, row, actor=actor, action="request.running")
    return row


class Lease:
    """Renews the lease of a running request until stopped; `held` turns False if another
    process took it over (the runner then leaves the outcome to the new owner)."""

    def __init__(self, core: Core, request_id: str, owner: str) -> None:
        self.core, self.request_id, self.owner = core, request_id, owner
        self.held = True
        self._stop = threading.Event()
        self._renewing: Future[None] | None = None

    def __enter__(self) -> Lease:
        # On a kept thread (CallPools.beside, never short of one): starting a thread of its
        # own waits until that thread first holds the GIL, right before the first AWS call.
        self._renewing = self.core.aws.pools.beside.submit(self._loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._renewing is not None:
            wait([self._renewing], timeout=5)

    def renew(self) -> bool:
        try:
            with self.core.sessions.begin() as session:
                result = guarded_update(
                    session,
                    Request,
                    [
                        Request.id == self.request_id,
                        Request.state == RUNNING,
                        Request.lease_owner == self.owner,
                    ],
                    lease_expires_at=utcnow() + LEASE,
                )
                self.held = result == 1
        except Exception:  # the store blinking: try again at the next tick, the lease is long
            logger.warning("renewing the lease of request %s failed", self.request_id)
        return self.held

    def _loop(self) -> None:
        while not self._stop.wait(RENEW_EVERY_SECONDS):
            if not self.renew():
                return


def _run_claimed(
    core: Core,
    request_id: str,
    owner: str,
    *,
    actor: str,
    raise_errors: bool,
    handles: Sequence[IntegrationHandle] = (),
) -> Request:
    row = load(core, request_id)
    with log_context(request_id=request_id, integration=_integration_name(row), actor=actor):
        return _run_loaded(
            core, row, owner, actor=actor, raise_errors=raise_errors, handles=handles
        )


def _run_loaded(
    core: Core,
    row: Request,
    owner: str,
    *,
    actor: str,
    raise_errors: bool,
    handles: Sequence[IntegrationHandle],
) -> Request:
    request_id = row.id
    if row.kind not in STEPPED_KINDS:
        _refresh(core, row)
    # else the checklist's first report shows it running, from its own thread, as the first
    # calls go out: no chat.update before them.
    error: RoleUpError | None = None
    with Lease(core, request_id, owner) as lease:
        try:
            outcome = _perform(core, row, actor=actor, lease=lease, handles=handles)
        except RoleUpError as exc:
            error, outcome = exc, exc.user_message
        except Exception:
            logger.exception("request %s (%s) failed", row.id, row.kind)
            error, outcome = RoleUpError(f"{describe(row)} failed: {UNEXPECTED}."), UNEXPECTED
    row = _finish(core, row, owner, actor=actor, ok=error is None, outcome=outcome)
    if error is not None and raise_errors:
        raise error
    return row


def _finish(core: Core, row: Request, owner: str, *, actor: str, ok: bool, outcome: str) -> Request:
    extra: dict[str, Any] = {"outcome": outcome[:4000], "lease_owner": None}
    if ok or row.decided_by == AUTO_APPROVER:
        # Kept after a failure only while an approver can still Retry it from the message.
        extra["secret_ciphertext"] = None
    with core.sessions.begin() as session:
        # Only the lease's owner finishes: a runner whose lease was taken over stays silent.
        won = move(
            session,
            row.id,
            from_states=(RUNNING,),
            to=DONE if ok else FAILED,
            where=(Request.lease_owner == owner,),
            **extra,
        )
        if won:
            _audit(
                session,
                row,
                actor=actor,
                action="request.done" if ok else "request.failed",
                outcome="ok" if ok else "error",
                detail={"outcome": outcome[:500]},
            )
        else:
            _audit(
                session,
                row,
                actor=actor,
                action="request.outcome_dropped",
                outcome="error",
                detail={"reason": "another process holds the lease"},
            )
    if won and row.secret_ciphertext and "secret_ciphertext" in extra:
        _purge_secrets(core)
    row = load(core, row.id)
    if not won:
        return row
    _refresh(core, row)
    if row.decided_by != AUTO_APPROVER:
        # An auto-approved request ran inside the requester's own command, which answers them.
        _tell(core, row, row.state)
    return row


def _perform(
    core: Core,
    row: Request,
    *,
    actor: str,
    lease: Lease,
    handles: Sequence[IntegrationHandle] = (),
) -> str:
    """Do what the request asks (its kind knows how); return the outcome line."""
    kind = kind_of(row.kind)
    payload = kind.load(row.payload or {})

    def secret() -> str:
        if not row.secret_ciphertext:
            raise RoleUpError("The initial password of this request is gone: ask for it again.")
        return core.require_box().decrypt(row.secret_ciphertext, what=f"request {row.id}")

    # The checklist is written (and Slack updated) by a thread of its own: a step's AWS calls
    # never wait for the report of an earlier one, and reports that pile up meanwhile are
    # written in one transaction and shown in one chat.update.
    checklist: BackgroundReporter[tuple[str, str, str]] = BackgroundReporter(
        lambda batch: _record_steps(core, row.id, batch, owner=lease.owner),
        name=f"checklist-{row.id[:8]}",
        threads=core.aws.pools.beside,
    )

    def on_step(key: str) -> StepCallback:
        def report(step: str, status: str) -> None:
            if not lease.held:
                raise RoleUpError("Another RoleUp process took this request over.")
            checklist.report((key, step, status))

        return report

    def mark_finished(key: str) -> None:
        # Written after every step of the account: a recovery skips only a finished account.
        checklist.report((key, FINISHED, DONE))
        checklist.flush()

    finished_before = list(row.steps or [])
    run = RunContext(
        request_id=row.id,
        actor=actor,
        requester=row.requester,
        on_step=on_step,
        # The steps as the claim found them: only the lease's owner writes steps, so what
        # earlier runs finished is all there is to skip, and this run's own are not asked.
        finished=lambda key: _account_finished(finished_before, key),
        mark_finished=mark_finished,
        secret=secret,
        handle=Handles(core, actor=actor, request_id=row.id, opened=handles),
    )
    with checklist:
        try:
            return kind.perform(core, payload, run)
        finally:
            # The checklist ends as the steps did, whatever the outcome, before it is shown.
            with contextlib.suppress(Exception):
                checklist.flush()


# --- offboarding checklist -----------------------------------------------------------------
FINISHED = "finished"
#: The kinds that run step by step with a checklist (and resume where they stopped).
STEPPED_KINDS = frozenset({policy.OFFBOARD, policy.EXPIRE_ACCOUNT})


def account_key(account: dict[str, Any]) -> str:
    return f"{account.get('integration', account.get('integration_id'))}/{account['user_name']}"


def _account_finished(steps: list[Any], key: str) -> bool:
    return any(s.get("account") == key and s.get("step") == FINISHED for s in steps)


def _record_steps(
    core: Core, request_id: str, reports: list[tuple[str, str, str]], *, owner: str
) -> None:
    """Record each (account, step, status) in order (only the lease's owner writes steps),
    renew the lease, and re-render once."""
    with core.sessions.begin() as session:
        row = session.get(Request, request_id)
        if row is None or row.lease_owner != owner:
            return
        steps = list(row.steps)
        for key, step, status in reports:
            steps = [s for s in steps if not (s.get("account") == key and s.get("step") == step)]
            steps.append({"account": key, "step": step, "status": status})
        row.steps = steps
        row.updated_at = utcnow()
        row.lease_expires_at = utcnow() + LEASE
    if any(status != DONE for _, _, status in reports):
        # A step's "done" is shown by the next step's "running" (or the end): fewer
        # chat.update calls, well inside Slack's rate limit.
        _refresh(core, load(core, request_id))


# --- expiry, reminders, recovery -----------------------------------------------------------
def expire_pending(core: Core, now: datetime | None = None) -> int:
    """Expire every pending request past its expiry; each one is told. Returns how many."""
    now = now or utcnow()
    with core.sessions() as session:
        ids = session.scalars(
            select(Request.id).where(Request.state == PENDING, Request.expires_at <= now)
        ).all()
    expired = sum(1 for request_id in ids if _expire(core, request_id, now))
    _forget_stale_secrets(core, now - timedelta(hours=core.settings.retry_window_hours))
    return expired


def _forget_stale_secrets(core: Core, cutoff: datetime) -> None:
    """A failed request keeps its encrypted password for a Retry, but not past the window."""
    with core.sessions.begin() as session:
        forgotten = session.execute(
            update(Request)
            .where(
                Request.state == FAILED,
                Request.secret_ciphertext.is_not(None),
                Request.updated_at <= cutoff,
            )
            # updated_at kept: it is when the request failed, which the retry window reads.
            .values(secret_ciphertext=None, updated_at=Request.updated_at)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    if forgotten:
        _purge_secrets(core)


def _purge_secrets(core: Core) -> None:
    """An erased password must not stay readable in the store's files (storage/erasure.py)."""
    try:
        purge(core.engine, ("requests",))
    except Exception:
        # The row is already erased and committed; the files catch up at the next purge.
        logger.exception("could not purge erased secrets from the store's files")


def _expire(core: Core, request_id: str, now: datetime) -> bool:
    hours = core.settings.request_ttl_hours
    outcome = f"Expired: nobody decided within {hours:g} hours."
    with core.sessions.begin() as session:
        won = move(
            session,
            request_id,
            from_states=(PENDING,),
            to=EXPIRED,
            where=(Request.expires_at <= now,),
            secret_ciphertext=None,
            outcome=outcome,
        )
        row = session.get(Request, request_id)
        if won and row is not None:
            _audit(session, row, actor="roleup", action="request.expired")
    if won:
        _purge_secrets(core)
    if won and row is not None:
        _refresh(core, row)
        _tell(core, row, EXPIRED)
    return won


def fail_refused_pending(core: Core, integration_id: int, *, reason: str, actor: str) -> list[str]:
    """Fail every pending request that would change IAM through the integration (it turned
    read-only), each once with `reason`; approval messages and requesters are told. A
    removal of the integration changes no IAM and stays pending. Returns the ids failed."""
    with core.sessions() as session:
        rows = session.scalars(
            select(Request).where(Request.state == PENDING).order_by(Request.created_at)
        ).all()
    failed: list[str] = []
    for row in rows:
        if row.kind == policy.REMOVE_INTEGRATION or integration_id not in integration_ids_of(row):
            continue
        with core.sessions.begin() as session:
            won = move(
                session,
                row.id,
                from_states=(PENDING,),
                to=FAILED,
                secret_ciphertext=None,
                outcome=reason,
            )
            if won:
                _audit(
                    session,
                    row,
                    actor=actor,
                    action="request.failed",
                    outcome="error",
                    detail={"error": reason},
                )
        if won:
            failed.append(row.id)
            fresh = load(core, row.id)
            _refresh(core, fresh)
            _tell(core, fresh, FAILED)
    if any(row.secret_ciphertext for row in rows if row.id in failed):
        _purge_secrets(core)
    return failed


def running_on(core: Core, integration_id: int) -> list[str]:
    """Requests running now (a live lease) through the integration: their clients hold the
    credentials it had when they started."""
    with core.sessions() as session:
        rows = session.scalars(
            select(Request).where(Request.state == RUNNING, Request.lease_expires_at > utcnow())
        ).all()
    return [row.id for row in rows if integration_id in integration_ids_of(row)]


def integration_ids_of(row: Request) -> list[int]:
    try:
        kind = kind_of(row.kind)
        return [int(i) for i in kind.integration_ids(kind.load(row.payload or {}))]
    except (RoleUpError, TypeError, ValueError):  # a damaged payload is nobody's to fail here
        return []


def remind_pending(core: Core, older_than: timedelta, now: datetime | None = None) -> int:
    """Remind approvers of requests pending for longer than `older_than` (at most once per
    `older_than`, across every instance). Returns how many were reminded."""
    now = now or utcnow()
    cutoff = now - older_than
    with core.sessions() as session:
        rows = session.scalars(
            select(Request).where(
                Request.state == PENDING,
                Request.created_at <= cutoff,
                or_(Request.reminded_at.is_(None), Request.reminded_at <= cutoff),
            )
        ).all()
    reminded = 0
    for row in rows:
        with core.sessions.begin() as session:
            claimed = guarded_update(
                session,
                Request,
                [
                    Request.id == row.id,
                    Request.state == PENDING,
                    or_(Request.reminded_at.is_(None), Request.reminded_at <= cutoff),
                ],
                reminded_at=now,
            )
            won = claimed == 1
            if won:
                _audit(session, row, actor="roleup", action="request.reminded")
        if won:
            reminded += 1
            _remind(core, row)
    return reminded


def recover_running(core: Core, *, now: datetime | None = None) -> int:
    """Take over requests a dead process left behind: a running request whose lease expired
    (offboarding resumes; anything else is marked failed, as it may be half-made), and an
    approved request nobody claimed. Call at start and from time to time; returns how many."""
    now = now or utcnow()
    with core.sessions() as session:
        rows = session.scalars(
            select(Request).where(
                or_(
                    and_(Request.state == RUNNING, _lease_expired(now)),
                    and_(Request.state == APPROVED, Request.updated_at <= now - UNCLAIMED_AFTER),
                )
            )
        ).all()
    return sum(1 for row in rows if _recover(core, row, now))


def live_payloads(session: Session, kind: str, now: datetime) -> list[dict[str, Any]]:
    """The payloads of the requests of `kind` some process is running now (a live lease) or
    is about to run (approved, not yet left unclaimed): what a job's own claim on the same
    work must not be taken over from, however long AWS makes the run last."""
    rows = session.scalars(
        select(Request.payload).where(
            Request.kind == kind,
            or_(
                and_(Request.state == RUNNING, not_(_lease_expired(now))),
                and_(Request.state == APPROVED, Request.updated_at > now - UNCLAIMED_AFTER),
            ),
        )
    ).all()
    return [payload for payload in rows if isinstance(payload, dict)]


def _lease_expired(now: datetime) -> Any:
    # A row from before leases (no expiry) counts as expired once idle for a whole lease.
    return or_(
        Request.lease_expires_at <= now,
        and_(Request.lease_expires_at.is_(None), Request.updated_at <= now - LEASE),
    )


def _recover(core: Core, row: Request, now: datetime) -> bool:
    # Offboarding resumes (each step reads what is left); an approved request never started.
    resume = row.kind in STEPPED_KINDS or row.state == APPROVED
    owner = new_owner()
    if row.state == APPROVED:
        guard: tuple[Any, ...] = (Request.updated_at <= now - UNCLAIMED_AFTER,)
    else:
        # The lease seen is the lease taken over: two recoverers cannot both win it.
        same_lease = (
            Request.lease_owner.is_(None)
            if row.lease_owner is None
            else Request.lease_owner == row.lease_owner
        )
        guard = (_lease_expired(now), same_lease)
    with core.sessions.begin() as session:
        won = move(
            session,
            row.id,
            from_states=(row.state,),
            to=RUNNING if resume else FAILED,
            where=guard,
            **(
                {"lease_owner": owner, "lease_expires_at": utcnow() + LEASE}
                if resume
                else {"outcome": _interrupted(row), "lease_owner": None}
            ),
        )
        if won:
            _audit(
                session,
                row,
                actor="roleup",
                action="request.recovered",
                outcome="ok" if resume else "error",
                detail={"resumed": resume},
            )
    if not won:
        return False
    if resume:
        _run_claimed(core, row.id, owner, actor=row.decided_by or "roleup", raise_errors=False)
    else:
        failed = load(core, row.id)
        _refresh(core, failed)
        _tell(core, failed, FAILED)
    return True


def _interrupted(row: Request) -> str:
    return (
        "Interrupted: the server stopped while this ran. Check the account in AWS "
        "(the change may be partly made), then Retry."
    )


# --- helpers -------------------------------------------------------------------------------
def describe(row: Request) -> str:
    """A short plain description, e.g. `to offboard prod/alice` (user text left unescaped:
    renderers escape it)."""
    try:
        kind = kind_of(row.kind)
        return kind.describe(kind.load(row.payload or {}))
    except RoleUpError:
        return row.kind


def _audit(
    session: Session,
    row: Request,
    *,
    actor: str,
    action: str,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> None:
    audit.record(session, **_audit_values(row, actor, action, outcome, detail))


def _audit_values(
    row: Request,
    actor: str,
    action: str,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "actor": actor[:64],
        "action": action,
        "target": _target(row)[:512],
        "integration": _integration_name(row),
        "outcome": outcome,
        "request_id": row.id,
        "detail": {"kind": row.kind, **(detail or {})},
    }


def _integration_name(row: Request) -> str | None:
    try:
        payload = kind_of(row.kind).load(row.payload or {})
    except RoleUpError:
        return None
    if isinstance(payload, OffboardPayload):
        names = sorted({a.integration for a in payload.accounts})
        return names[0][:64] if len(names) == 1 else None
    return str(payload.integration)[:64] or None


def _target(row: Request) -> str:
    try:
        kind = kind_of(row.kind)
        return kind.target(kind.load(row.payload or {}))
    except RoleUpError:
        return ""


def _refresh(core: Core, row: Request) -> None:
    _safely(lambda: notifier_of(core).refresh(row), row.id)


def _remind(core: Core, row: Request) -> None:
    _safely(lambda: notifier_of(core).remind(row), row.id)


def _tell(core: Core, row: Request, event: str, detail: str = "") -> None:
    _safely(lambda: notifier_of(core).tell_requester(row, event, detail), row.id)


def _safely(call: Callable[[], Any], request_id: str) -> None:
    """Slack being down must never undo or block a state change already committed."""
    try:
        call()
    except Exception:
        logger.exception("notifying about request %s failed", request_id)
