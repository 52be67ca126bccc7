"""Requests and their approval state machine: submit, decide, run at most once, retry, expire.

A Request row is the state machine:

    pending -> approved | denied | expired | cancelled
    approved -> running -> done | failed
    failed -> running                      (an approver's Retry; offboarding resumes)

Every move is one conditional UPDATE (`... WHERE id = :id AND state IN (:from)`) whose rowcount
says who won, so double clicks, Slack retries and two approvers clicking at once execute a
request once. The row is committed before anything is posted to Slack, and Slack failures are
logged and audited, never allowed to lose a request's state.

Slack is reached only through an `ApprovalNotifier` (core.extras["approvals_notifier"], set by
handlers.actions.approvals); without one (the CLI), notices are only logged.

Payloads by kind:
    onboard, invite_onboard: username, groups, policies, slack_user_id, created_by
                             (the password travels as `secret`, stored encrypted until the end)
    offboard:                target (what was asked for), accounts: [{integration_id,
                             integration, user_name, plan}] (plan = OffboardPlan.to_dict())
    set_groups:              user_name, groups (the wanted set), added, removed
    remove_integration:      integration_id, integration (the row outlives the integration)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot.services import approval_policy as policy
from bot.services import audit, integrations, lifecycle
from bot.services.approval_policy import (
    INVITE_ONBOARD,
    KINDS,
    OFFBOARD,
    ONBOARD,
    REMOVE_INTEGRATION,
    SET_GROUPS,
    MemberOf,
    Recipients,
)
from bot.services.container import Core
from bot.services.errors import (  # re-exported for handlers
    IntegrationNotFound,
    InvalidInput,
    NotAllowed,
    RequestConflict,
    RequestNotFound,
    RoleUpError,
)
from storage.models import Integration, Request, utcnow

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
    PENDING: frozenset({APPROVED, DENIED, EXPIRED, CANCELLED}),
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
DEFAULT_STALE_RUN = timedelta(minutes=5)

StepCallback = Callable[[str, str], None]
TOLD_EVENTS = (DONE, FAILED, DENIED, EXPIRED, "not_posted")


class ApprovalNotifier(Protocol):
    """How the service talks to people; the Slack implementation lives in handlers/."""

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
    found = core.extras.get("approvals_notifier")
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
    sources = tuple(from_states)
    for source in sources:
        if to not in TRANSITIONS[source]:
            raise ValueError(f"a request cannot go from {source} to {to}")
    statement = (
        update(Request)
        .where(Request.id == request_id, Request.state.in_(sources), *where)
        .values(state=to, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    result = session.execute(statement)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def load(core: Core, request_id: str) -> Request:
    with core.sessions() as session:
        row = session.get(Request, request_id)
        if row is None:
            raise RequestNotFound("That request no longer exists.")
        return row


def integrations_of(session: Session, request: Request) -> list[Integration]:
    ids = integration_ids(request.kind, request.integration_id, request.payload)
    rows = session.scalars(select(Integration).where(Integration.id.in_(ids))).all()
    by_id = {row.id: row for row in rows}
    return [by_id[i] for i in ids if i in by_id]


def integration_ids(kind: str, integration_id: int | None, payload: dict[str, Any]) -> list[int]:
    if kind == OFFBOARD and payload.get("accounts"):
        return list(dict.fromkeys(int(a["integration_id"]) for a in payload["accounts"]))
    if kind == REMOVE_INTEGRATION and payload.get("integration_id") is not None:
        return [int(payload["integration_id"])]
    return [integration_id] if integration_id is not None else []


# --- submit --------------------------------------------------------------------------------
def submit(
    core: Core,
    *,
    kind: str,
    integration_id: int | None,
    requester: str,
    payload: dict[str, Any],
    secret: str | None = None,
    response_url: str | None = None,
) -> Request:
    """Record a request; post it for approval, or (when policy needs none) run it right away.

    An auto-approved request that fails raises the RoleUpError that stopped it (the row is left
    `failed` with the reason); a request waiting for approval is returned `pending`.
    """
    if kind not in KINDS:
        raise InvalidInput(f"Unknown request kind {kind!r}.")
    payload = dict(payload)
    if kind == REMOVE_INTEGRATION and integration_id is not None:
        # Kept in the payload, not the foreign key: removing the integration must not
        # cascade away the request that removes it.
        payload.setdefault("integration_id", integration_id)
        integration_id = None
    now = utcnow()
    with core.sessions.begin() as session:
        row, to = _insert(core, session, kind, integration_id, requester, payload, secret, now)
        row.response_url = response_url
    if to is None:
        return execute(core, row.id, actor=requester, from_states=(APPROVED,), raise_errors=True)
    _post(core, row, to)
    return load(core, row.id)


def _insert(
    core: Core,
    session: Session,
    kind: str,
    integration_id: int | None,
    requester: str,
    payload: dict[str, Any],
    secret: str | None,
    now: datetime,
) -> tuple[Request, Recipients | None]:
    ids = integration_ids(kind, integration_id, payload)
    rows = session.scalars(select(Integration).where(Integration.id.in_(ids))).all()
    if not ids or len(rows) != len(ids):
        raise IntegrationNotFound("That integration no longer exists.")
    names = sorted(r.name for r in rows)
    if kind != OFFBOARD:
        payload.setdefault("integration", names[0])
    needed = policy.approval_required(kind, rows, payload)
    to = policy.recipients(kind, rows, core.settings.admins) if needed else None
    if to is not None and to.empty:
        raise NotAllowed(
            f"Nobody can approve requests for integration {', '.join(names)}: "
            "ask an admin to set its approvers or approvals channel."
        )
    row = Request(
        id=str(uuid.uuid4()),
        integration_id=integration_id,
        kind=kind,
        payload=payload,
        secret_ciphertext=core.require_box().encrypt(secret) if secret else None,
        requester=requester,
        state=PENDING if needed else APPROVED,
        decided_by=None if needed else AUTO_APPROVER,
        decided_at=None if needed else now,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(hours=core.settings.request_ttl_hours) if needed else None,
        steps=[],
    )
    session.add(row)
    _audit(
        session,
        row,
        actor=requester,
        action="request.created",
        detail={"kind": kind, "approval": "required" if needed else "not required"},
    )
    return row, to


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
    row = load(core, request_id)
    _check_decider(core, row, approver, member_of, action="request.decide_refused")
    if row.state != PENDING:
        raise RequestConflict(already_text(row))
    now = utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        _expire(core, request_id, now)
        raise RequestConflict("This request has expired: ask for it again.")
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
    row = load(core, request_id)
    _refresh(core, row)
    if not approve:
        _tell(core, row, DENIED)
        return row
    if execute_now:
        return execute(core, request_id, actor=approver)
    return row


def retry(
    core: Core, request_id: str, *, approver: str, member_of: MemberOf | None = None
) -> Request:
    """Run a failed request again (offboarding resumes where it stopped)."""
    row = load(core, request_id)
    _check_decider(core, row, approver, member_of, action="request.retry_refused")
    if row.state != FAILED:
        raise RequestConflict(already_text(row))
    with core.sessions.begin() as session:
        _audit(session, row, actor=approver, action="request.retried")
    return execute(core, request_id, actor=approver, from_states=(FAILED,))


def _check_decider(
    core: Core, row: Request, approver: str, member_of: MemberOf | None, *, action: str
) -> None:
    with core.sessions() as session:
        integrations = integrations_of(session, row)
    if not integrations and row.state != PENDING:
        # Its integration went away after the decision (an approved removal, typically): the
        # late clicker is told what became of the request, not that nobody may decide it.
        raise RequestConflict(already_text(row))
    decision = policy.may_decide(
        approver=approver,
        requester=row.requester,
        kind=row.kind,
        integrations=integrations,
        admins=core.settings.admins,
        member_of=member_of,
    )
    if not decision.allowed:
        with core.sessions.begin() as session:
            _audit(session, row, actor=approver, action=action, outcome="refused")
        raise NotAllowed(decision.reason)


def already_text(row: Request) -> str:
    by = f" by <@{row.decided_by}>" if row.decided_by and row.decided_by != AUTO_APPROVER else ""
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


# --- execute once --------------------------------------------------------------------------
def execute(
    core: Core,
    request_id: str,
    *,
    actor: str,
    from_states: Iterable[str] = (APPROVED,),
    raise_errors: bool = False,
) -> Request:
    """Claim the request (-> running) and run it; a caller that loses the claim returns the row
    as it is, without running anything."""
    with core.sessions.begin() as session:
        won = move(session, request_id, from_states=from_states, to=RUNNING, outcome=None)
        if won:
            row = session.get(Request, request_id)
            assert row is not None
            _audit(session, row, actor=actor, action="request.running")
    if not won:
        return load(core, request_id)
    return _run_claimed(core, request_id, actor=actor, raise_errors=raise_errors)


def _run_claimed(core: Core, request_id: str, *, actor: str, raise_errors: bool) -> Request:
    row = load(core, request_id)
    _refresh(core, row)
    error: RoleUpError | None = None
    try:
        outcome = _perform(core, row, actor=actor)
    except RoleUpError as exc:
        error, outcome = exc, exc.user_message
    except Exception:
        logger.exception("request %s (%s) failed", row.id, row.kind)
        error, outcome = RoleUpError(f"{describe(row)} failed: {UNEXPECTED}."), UNEXPECTED
    row = _finish(core, row, actor=actor, ok=error is None, outcome=outcome)
    if error is not None and raise_errors:
        raise error
    return row


def _finish(core: Core, row: Request, *, actor: str, ok: bool, outcome: str) -> Request:
    extra: dict[str, Any] = {"outcome": outcome[:4000]}
    if ok or row.decided_by == AUTO_APPROVER:
        # Kept after a failure only while an approver can still Retry it from the message.
        extra["secret_ciphertext"] = None
    with core.sessions.begin() as session:
        won = move(session, row.id, from_states=(RUNNING,), to=DONE if ok else FAILED, **extra)
        if won:
            _audit(
                session,
                row,
                actor=actor,
                action="request.done" if ok else "request.failed",
                outcome="ok" if ok else "error",
                detail={"outcome": outcome[:500]},
            )
    row = load(core, row.id)
    _refresh(core, row)
    if row.decided_by != AUTO_APPROVER:
        # An auto-approved request ran inside the requester's own command, which answers them.
        _tell(core, row, row.state)
    return row


def _perform(core: Core, row: Request, *, actor: str) -> str:
    """Do what the request asks; return the outcome line shown to people."""
    if row.kind in (ONBOARD, INVITE_ONBOARD):
        return _onboard(core, row, actor=actor)
    if row.kind == OFFBOARD:
        return _offboard(core, row, actor=actor)
    if row.kind == SET_GROUPS:
        return _set_groups(core, row, actor=actor)
    if row.kind == REMOVE_INTEGRATION:
        return _remove_integration(core, row, actor=actor)
    raise RoleUpError(f"Unknown request kind {row.kind!r}.")


def _onboard(core: Core, row: Request, *, actor: str) -> str:
    if not row.secret_ciphertext:
        raise RoleUpError("The initial password of this request is gone: ask for it again.")
    password = core.require_box().decrypt(row.secret_ciphertext, what=f"request {row.id}")
    p = row.payload
    spec = lifecycle.OnboardSpec(
        username=p["username"],
        password=password,
        groups=list(p.get("groups", [])),
        policies=list(p.get("policies", [])),
        slack_user_id=p.get("slack_user_id"),
        created_by=p.get("created_by", row.requester),
    )
    assert row.integration_id is not None
    lifecycle.onboard(core, row.integration_id, spec, actor=actor, request_id=row.id)
    return f"IAM user {p['username']} created in {p.get('integration', '')}."


def _offboard(core: Core, row: Request, *, actor: str) -> str:
    done: list[str] = []
    for account in row.payload.get("accounts", []):
        key = account_key(account)
        if _account_finished(row.steps, key):
            done.append(key)
            continue
        lifecycle.offboard(
            core,
            int(account["integration_id"]),
            account["user_name"],
            actor=actor,
            request_id=row.id,
            on_step=_step_recorder(core, row.id, key),
        )
        _record_step(core, row.id, key, FINISHED, DONE)
        done.append(key)
    return f"Offboarded {', '.join(done)}: AWS confirms the user is gone."


def _set_groups(core: Core, row: Request, *, actor: str) -> str:
    p = row.payload
    assert row.integration_id is not None
    change = lifecycle.set_groups(
        core, row.integration_id, p["user_name"], list(p["groups"]), actor=actor, request_id=row.id
    )
    added = ", ".join(change.added) or "none"
    removed = ", ".join(change.removed) or "none"
    return f"Groups of {p['user_name']} changed: added {added}; removed {removed}."


def _remove_integration(core: Core, row: Request, *, actor: str) -> str:
    name = row.payload["integration"]
    integrations.remove_integration(core, name, actor=actor, request_id=row.id)
    return f"Integration {name} removed, with all its data and its key."


# --- offboarding checklist -----------------------------------------------------------------
FINISHED = "finished"


def account_key(account: dict[str, Any]) -> str:
    return f"{account.get('integration', account.get('integration_id'))}/{account['user_name']}"


def _account_finished(steps: list[Any], key: str) -> bool:
    return any(s.get("account") == key and s.get("step") == FINISHED for s in steps)


def _step_recorder(core: Core, request_id: str, key: str) -> StepCallback:
    def on_step(step: str, status: str) -> None:
        _record_step(core, request_id, key, step, status)

    return on_step


def _record_step(core: Core, request_id: str, key: str, step: str, status: str) -> None:
    """Record one step's status (only the claimed runner writes steps) and re-render."""
    with core.sessions.begin() as session:
        row = session.get(Request, request_id)
        if row is None:
            return
        steps = [s for s in row.steps if not (s.get("account") == key and s.get("step") == step)]
        steps.append({"account": key, "step": step, "status": status})
        row.steps = steps
        row.updated_at = utcnow()  # the heartbeat recover_running reads
    if status != DONE:
        # A step's "done" is shown by the next step's "running" (or the end): half the
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
    _forget_stale_secrets(core, now - timedelta(hours=core.settings.request_ttl_hours))
    return expired


def _forget_stale_secrets(core: Core, cutoff: datetime) -> None:
    """A failed request keeps its encrypted password for a Retry, but not past the TTL."""
    with core.sessions.begin() as session:
        session.execute(
            update(Request)
            .where(
                Request.state == FAILED,
                Request.secret_ciphertext.is_not(None),
                Request.updated_at <= cutoff,
            )
            .values(secret_ciphertext=None)
            .execution_options(synchronize_session=False)
        )


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
    if won and row is not None:
        _refresh(core, row)
        _tell(core, row, EXPIRED)
    return won


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
            claimed = session.execute(
                update(Request)
                .where(
                    Request.id == row.id,
                    Request.state == PENDING,
                    or_(Request.reminded_at.is_(None), Request.reminded_at <= cutoff),
                )
                .values(reminded_at=now)
                .execution_options(synchronize_session=False)
            )
            won = claimed.rowcount == 1  # type: ignore[attr-defined]
            if won:
                _audit(session, row, actor="roleup", action="request.reminded")
        if won:
            reminded += 1
            _remind(core, row)
    return reminded


def recover_running(
    core: Core, *, stale_after: timedelta = DEFAULT_STALE_RUN, now: datetime | None = None
) -> int:
    """Take over requests a killed process left approved or running (no heartbeat for
    `stale_after`): offboarding resumes, anything else is marked failed with a clear outcome.
    Call at process start and from time to time; returns how many were taken over."""
    now = now or utcnow()
    cutoff = now - stale_after
    with core.sessions() as session:
        rows = session.scalars(
            select(Request).where(
                Request.state.in_((APPROVED, RUNNING)), Request.updated_at <= cutoff
            )
        ).all()
    return sum(1 for row in rows if _recover(core, row, cutoff))


def _recover(core: Core, row: Request, cutoff: datetime) -> bool:
    resume = row.kind == OFFBOARD or row.state == APPROVED
    with core.sessions.begin() as session:
        won = move(
            session,
            row.id,
            from_states=(row.state,),
            to=RUNNING if resume else FAILED,
            where=(Request.updated_at <= cutoff,),
            **({} if resume else {"outcome": _interrupted(row)}),
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
        _run_claimed(core, row.id, actor=row.decided_by or "roleup", raise_errors=False)
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
    """A short plain description, e.g. `offboard alice in prod` (user text left unescaped:
    renderers escape it)."""
    p = row.payload
    where = p.get("integration", "")
    if row.kind == OFFBOARD:
        accounts = ", ".join(account_key(a) for a in p.get("accounts", []))
        return f"to offboard {accounts}"
    if row.kind in (ONBOARD, INVITE_ONBOARD):
        return f"to onboard {p.get('username', '?')} in {where}"
    if row.kind == SET_GROUPS:
        return f"to change the groups of {p.get('user_name', '?')} in {where}"
    if row.kind == REMOVE_INTEGRATION:
        return f"to remove integration {where}"
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
    names = sorted({a.get("integration", "") for a in row.payload.get("accounts", [])})
    integration = row.payload.get("integration") or (names[0] if len(names) == 1 else None)
    audit.record(
        session,
        actor=actor[:64],
        action=action,
        target=_target(row)[:512],
        integration=integration[:64] if integration else None,
        outcome=outcome,
        request_id=row.id,
        detail={"kind": row.kind, **(detail or {})},
    )


def _target(row: Request) -> str:
    p = row.payload
    if row.kind == OFFBOARD:
        return ", ".join(account_key(a) for a in p.get("accounts", []))
    if row.kind == REMOVE_INTEGRATION:
        return str(p.get("integration", ""))
    return str(p.get("username") or p.get("user_name") or "")


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
