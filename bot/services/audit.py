"""The append-only audit log: record, read the latest, export as JSON lines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from bot.services.records import from_row
from storage.models import AuditEvent

if TYPE_CHECKING:
    from bot.services.container import Core

_SECRET_KEY = re.compile(r"password|secret|token|credential", re.IGNORECASE)


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    integration: str | None = None,
    outcome: str = "ok",
    request_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one event to the caller's transaction.

    `detail` must not carry secrets; keys that look like they would are refused outright so a
    careless caller fails in tests rather than leaking in production.
    """
    detail = _checked(detail or {})
    event = AuditEvent(
        actor=actor,
        action=action,
        target=target,
        integration=integration,
        outcome=outcome,
        request_id=request_id,
        detail=detail,
    )
    session.add(event)
    return event


def record_all(session: Session, events: Sequence[dict[str, Any]]) -> None:
    """Add several events (each the keywords of `record`) to the caller's transaction as one
    INSERT, in their order: for a hot path, where an ORM object and a flush per event cost
    more than the statement. Their details are checked as `record` checks them."""
    rows = [{**event, "detail": _checked(event.get("detail") or {})} for event in events]
    session.execute(insert(cast(Table, AuditEvent.__table__)), rows)


def _checked(detail: dict[str, Any]) -> dict[str, Any]:
    for key in detail:
        if _SECRET_KEY.search(key):
            raise ValueError(f"audit detail key {key!r} looks like a secret")
    return detail


def record_integration(
    session: Session, name: str, *, actor: str, action: str, **more: Any
) -> AuditEvent:
    """An event about an integration itself (added, synced, checked, its key rotated);
    `more` as for `record` (outcome, request_id, detail)."""
    return record(session, actor=actor, action=action, target=name, integration=name, **more)


@dataclass(frozen=True)
class AuditEntry:
    """One audit event as the Slack surfaces read it (the row's columns, copied)."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    integration: str | None
    outcome: str
    request_id: str | None
    detail: dict[str, Any]


def latest(core: Core, limit: int = 20, *, integration: str | None = None) -> list[AuditEntry]:
    """The newest events first."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if integration is not None:
        query = query.where(AuditEvent.integration == integration)
    with core.sessions() as session:
        return [from_row(AuditEntry, row) for row in session.scalars(query)]


def as_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "integration": event.integration,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "detail": event.detail,
    }


def iter_events(session: Session, since: datetime | None = None) -> Iterator[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    yield from session.scalars(query.execution_options(yield_per=500))


def export_jsonl(session: Session, out: TextIO, since: datetime | None = None) -> int:
    count = 0
    for event in iter_events(session, since):
        out.write(json.dumps(as_dict(event), sort_keys=True) + "\n")
        count += 1
    return count
