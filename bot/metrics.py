"""What RoleUp counts for Prometheus, and the text GET /metrics serves.

Counters and histograms live in the process that observes them. Under `roleup serve` every
gunicorn worker is its own process, so the server sets PROMETHEUS_MULTIPROC_DIR before any
worker imports prometheus_client (bot.server): each worker then writes its values to files in
that directory and a scrape, answered by whichever worker, adds them all up
(MultiProcessCollector). prometheus_client picks where values go as it is imported, so it is
imported here only when a Metrics is built, never at import: the CLI imports this module long
before `roleup serve` sets the variable. Without the variable (`roleup socket`, tests) the
values stay in this process's own registry.

What the store already knows (grants active, accounts per integration, pending requests, the
last sync) is read from the store at scrape time instead of being kept in a gauge per worker:
the answer is then the same whichever worker is asked.

Label values are bounded: request kinds, outcomes, AWS operations and Slack methods come from
code, AWS and Slack error codes are kept only when they look like one, and integrations are
named by admins. No person, user name or id is ever a label.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Account, Grant, Integration, Request, utcnow

if TYPE_CHECKING:
    from prometheus_client.core import GaugeMetricFamily, Metric

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Where a request ends up; each reaching one is counted once (the move's guarded UPDATE won).
REQUEST_OUTCOMES = frozenset({"done", "failed", "denied", "expired", "cancelled"})
#: Decisions whose wait from submission is the approval latency.
DECISIONS = frozenset({"approved", "denied"})
OTHER = "other"
MOVES_KEY = "roleup.request_moves"
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,63}")
_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")
# Approvals take minutes to days; syncs seconds to many minutes.
WAIT_BUCKETS = (30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)
SYNC_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


def bounded(value: object, pattern: re.Pattern[str] = _CODE) -> str:
    """`value` if it looks like a code or a name from code, else "other"."""
    text = str(value or "")
    return text if pattern.fullmatch(text) else OTHER


def bearer_matches(authorization: str | None, token: str) -> bool:
    """True if an Authorization header is `Bearer <token>` (compared in constant time)."""
    given = (authorization or "").encode()
    return hmac.compare_digest(given, f"Bearer {token}".encode())


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """The process's counters and histograms; built once by create_core."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self._extra: list[StoreCollector] = []
        registry = self.registry

        def counter(name: str, text: str, labels: list[str]) -> Counter:
            return Counter(name, text, labels, registry=registry)

        def histogram(
            name: str, text: str, labels: list[str], buckets: Iterable[float]
        ) -> Histogram:
            return Histogram(name, text, labels, buckets=tuple(buckets), registry=registry)

        self.requests = counter(
            "roleup_requests",
            "Requests that reached an outcome, by kind and outcome.",
            ["kind", "outcome"],
        )
        self.approval_wait = histogram(
            "roleup_approval_wait_seconds",
            "Time from a request's submission to its approval or denial.",
            ["kind", "decision"],
            WAIT_BUCKETS,
        )
        self.aws_calls = counter(
            "roleup_aws_calls", "AWS API calls, by service and operation.", ["service", "operation"]
        )
        self.aws_errors = counter(
            "roleup_aws_errors",
            "AWS API calls that failed, by service, operation and error code.",
            ["service", "operation", "code"],
        )
        self.slack_errors = counter(
            "roleup_slack_api_errors",
            "Slack Web API calls that failed, by method and error.",
            ["method", "error"],
        )
        self.sync_duration = histogram(
            "roleup_sync_duration_seconds",
            "Duration of integration syncs, by integration and outcome.",
            ["integration", "outcome"],
            SYNC_BUCKETS,
        )
        self.drift = counter(
            "roleup_drift_changes",
            "Account changes made outside RoleUp that syncs found, by integration.",
            ["integration"],
        )
        self.jobs = counter(
            "roleup_jobs",
            "Scheduled job runs this deployment claimed, by job and outcome.",
            ["job", "outcome"],
        )

    # --- observations -----------------------------------------------------------------------
    def request_moved(self, kind: str, to: str, created_at: datetime | None) -> None:
        """A request's committed move to `to` (bot.services.approvals.move)."""
        kind = bounded(kind)
        if to in REQUEST_OUTCOMES:
            self.requests.labels(kind, to).inc()
        if to in DECISIONS and created_at is not None:
            waited = (utcnow() - created_at).total_seconds()
            self.approval_wait.labels(kind, to).observe(max(0.0, waited))

    def aws_called(self, event_name: str, failed: bool, code: str = "") -> None:
        # Event names are "after-call.<service>.<Operation>" (and "after-call-error...").
        _, service, operation = [*event_name.split(".", 2), "", ""][:3]
        service, operation = bounded(service), bounded(operation)
        self.aws_calls.labels(service, operation).inc()
        if failed:
            self.aws_errors.labels(service, operation, bounded(code)).inc()

    def slack_failed(self, method: str, error: str) -> None:
        self.slack_errors.labels(bounded(method), bounded(error)).inc()

    def synced(self, integration: str, ok: bool, seconds: float, drift: int = 0) -> None:
        name = bounded(integration, _NAME)
        self.sync_duration.labels(name, "ok" if ok else "failed").observe(seconds)
        if drift:
            self.drift.labels(name).inc(drift)

    def job_ran(self, job: str, ok: bool) -> None:
        self.jobs.labels(bounded(job), "ok" if ok else "failed").inc()

    # --- hooks --------------------------------------------------------------------------------
    def watch_boto(self, client: Any) -> None:
        """Count every call a botocore client makes (once per call, retries included)."""
        client.meta.events.register("after-call.*.*", self._after_call)
        client.meta.events.register("after-call-error.*.*", self._after_call_error)

    def _after_call(self, http_response: Any, parsed: Any, event_name: str, **_: Any) -> None:
        status = int(getattr(http_response, "status_code", 0) or 0)
        code = (parsed or {}).get("Error", {}).get("Code", "") if status >= 300 else ""
        self.aws_called(event_name, status >= 300, code or str(status))

    def _after_call_error(self, exception: BaseException, event_name: str, **_: Any) -> None:
        self.aws_called(event_name, True, type(exception).__name__)

    # --- exposition ---------------------------------------------------------------------------
    def add_collector(self, collector: StoreCollector) -> None:
        """A collector read at scrape time (the store's numbers)."""
        self._extra.append(collector)
        self.registry.register(collector)

    def render(self) -> bytes:
        """The Prometheus text of every worker's values (or this process's) and the store's."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        path = multiprocess_dir()
        if path is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
        for collector in self._extra:
            registry.register(collector)
        return generate_latest(registry)


class Uncounted(Metrics):
    """The metrics of a process nobody scrapes (a `roleup` command other than serve, worker or
    socket): every observation is dropped, and prometheus_client, a tenth of a second to
    import, is never loaded."""

    def __init__(self) -> None:
        self._extra = []

    def request_moved(self, kind: str, to: str, created_at: datetime | None) -> None:
        pass

    def aws_called(self, event_name: str, failed: bool, code: str = "") -> None:
        pass

    def slack_failed(self, method: str, error: str) -> None:
        pass

    def synced(self, integration: str, ok: bool, seconds: float, drift: int = 0) -> None:
        pass

    def job_ran(self, job: str, ok: bool) -> None:
        pass

    def watch_boto(self, client: Any) -> None:
        pass

    def add_collector(self, collector: StoreCollector) -> None:
        pass

    def render(self) -> bytes:
        return b""


def note_request_move(session: Session, kind: str, to: str, created_at: datetime | None) -> None:
    """Remember a won move until its transaction commits (a rolled-back one never counts)."""
    session.info.setdefault(MOVES_KEY, []).append((kind, to, created_at))


def watch_request_moves(sessions: sessionmaker[Session], metrics: Metrics) -> None:
    """Count the request moves each session commits."""

    def committed(session: Session) -> None:
        for kind, to, created_at in session.info.pop(MOVES_KEY, ()):
            metrics.request_moved(kind, to, created_at)

    def rolled_back(session: Session) -> None:
        session.info.pop(MOVES_KEY, None)

    event.listen(sessions, "after_commit", committed)
    event.listen(sessions, "after_rollback", rolled_back)


class StoreCollector:
    """Numbers read from the store at each scrape, the same whichever worker answers."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("roleup_store_up", "1 if the store answered this scrape.")
        try:
            with self.sessions() as session:
                families = list(_store_families(session))
        except SQLAlchemyError:  # the store is down: say so, and keep the rest of the scrape
            logger.warning("metrics: the store did not answer", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _store_families(session: Session) -> Iterable[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    names = dict(session.execute(select(Integration.id, Integration.name)).all())

    def per_integration(metric: GaugeMetricFamily, rows: Iterable[tuple[int, int]]) -> Metric:
        counts = {id_: count for id_, count in rows}
        for id_, name in sorted(names.items(), key=lambda item: item[1]):
            metric.add_metric([bounded(name, _NAME)], counts.get(id_, 0))
        return metric

    yield per_integration(
        GaugeMetricFamily(
            "roleup_accounts", "IAM users the last sync stored.", labels=["integration"]
        ),
        session.execute(
            select(Account.integration_id, func.count()).group_by(Account.integration_id)
        ),
    )
    yield per_integration(
        GaugeMetricFamily(
            "roleup_grants_active", "Time-bound group grants in force.", labels=["integration"]
        ),
        session.execute(
            select(Grant.integration_id, func.count())
            .where(Grant.state == "active")
            .group_by(Grant.integration_id)
        ),
    )
    pending = session.execute(
        select(func.count(), func.min(Request.created_at)).where(Request.state == "pending")
    ).one()
    yield GaugeMetricFamily(
        "roleup_requests_pending", "Requests waiting for an approver.", value=pending[0]
    )
    oldest = pending[1]
    yield GaugeMetricFamily(
        "roleup_oldest_pending_request_age_seconds",
        "How long the oldest pending request has waited (0 when none).",
        value=max(0.0, (utcnow() - oldest).total_seconds()) if oldest is not None else 0.0,
    )
    last = GaugeMetricFamily(
        "roleup_last_sync_timestamp_seconds",
        "When each integration last synced successfully (Unix time; 0 never).",
        labels=["integration"],
    )
    failing = GaugeMetricFamily(
        "roleup_sync_failing", "1 if the integration's last sync failed.", labels=["integration"]
    )
    for name, at, status in session.execute(
        select(Integration.name, Integration.last_sync_at, Integration.last_sync_status).order_by(
            Integration.name
        )
    ):
        label = [bounded(name, _NAME)]
        last.add_metric(label, at.timestamp() if at is not None else 0)
        failing.add_metric(label, 1 if status == "failed" else 0)
    yield last
    yield failing
