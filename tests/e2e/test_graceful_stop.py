"""A graceful stop of a real `roleup serve` (SIGTERM, as a deploy sends) keeps the clicks it
already acked: one queued behind a decision pool busy to the last thread still runs, once; one
still queued when the stop's grace is over is not run, and its clicker is told so; those still
running then are cut off by the exit, and their clickers are told that."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from bot.app import DECISION_THREADS, create_core
from bot.services.container import Core
from bot.settings import Settings
from handlers.approvals.actions import ENDED_CUT_OFF
from storage.models import AuditEvent, Integration, Request
from tests.e2e.instances import Instance
from tests.support.approvals import add_integration, click, ephemeral_to, wait_until
from tests.support.config import SIGNING_SECRET
from tests.support.requests import submit_request
from tests.support.sender import SlackSender
from tests.support.slack_api import Call, FakeSlackApi
from tests.support.socket_mode import start_socket

pytestmark = pytest.mark.slow

ADMIN = "UADMIN"  # who asked for every removal
BUSY = "UAPPROVER"  # whose Deny clicks keep every decision thread busy
LATE = "ULATECLICK"  # whose Approve click waits in the queue behind them
PATIENCE = 90.0  # how long to wait for the process (a bound on waiting, not on speed)
DRAINING = "stopping: the work already acked gets up to"
NOT_CARRIED_OUT = "RoleUp was restarting and did not carry out the approve click"


@dataclass
class Busy:
    """A `roleup serve` whose every decision thread is held in a Slack call (released by
    `gate`), with one more click acked and queued behind them (`queued`, on integration
    `target`)."""

    instance: Instance
    engine: Engine
    gate: threading.Event
    held: list[str]
    queued: str
    target: str

    def terminate(self) -> None:
        """SIGTERM to gunicorn's master, as a deploy or `docker stop` sends it."""
        assert self.instance.process is not None
        os.kill(self.instance.process.pid, signal.SIGTERM)

    def draining(self) -> bool:
        return DRAINING in self.instance.log.read_text()

    def exit_code(self) -> int:
        assert self.instance.process is not None
        return self.instance.process.wait(timeout=PATIENCE)

    def state(self, request_id: str) -> str:
        with self.engine.connect() as conn:
            return str(conn.scalar(select(Request.state).where(Request.id == request_id)))

    def audited(self, request_id: str) -> list[str]:
        with self.engine.connect() as conn:
            query = select(AuditEvent.action).where(AuditEvent.request_id == request_id)
            return list(conn.scalars(query.order_by(AuditEvent.id)))

    def integrations(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.scalars(select(Integration.name)))


def removal(core: Core, name: str, approvers: list[str]) -> str:
    integration_id = add_integration(core, name, approvers=approvers)
    row = submit_request(
        core, kind="remove_integration", integration_id=integration_id, requester=ADMIN, payload={}
    )
    return str(row.id)


def held_until(gate: threading.Event) -> Any:
    """A chat.postMessage answer that waits for `gate` (at most PATIENCE) first."""

    def answer(call: Call) -> dict[str, Any]:
        gate.wait(timeout=PATIENCE)
        return {"ok": True, "channel": call.params.get("channel"), "ts": f"9.{call.seq:06d}"}

    return answer


@pytest.fixture
def busy(
    own_db: Engine, own_env: dict[str, str], tmp_path: Path, slack_api: FakeSlackApi
) -> Iterator[Busy]:
    core = create_core(Settings.from_env({**os.environ, **own_env}))
    held = [removal(core, f"busy{i}", [BUSY]) for i in range(DECISION_THREADS)]
    queued = removal(core, "target", [LATE])
    core.engine.dispose()
    instance = Instance("serve", own_env, tmp_path, options=["--no-jobs"]).start()
    gate = threading.Event()
    try:
        # Every Deny tells its requester in a DM: held, each keeps its decision thread.
        slack_api.overrides["chat.postMessage"] = held_until(gate)
        slack = SlackSender(instance.url, SIGNING_SECRET, slack_api.response_url_base)
        for request_id in held:
            click(slack, "approval_deny", request_id, user=BUSY)
        slack_api.wait_for("chat.postMessage", count=DECISION_THREADS, timeout=PATIENCE)
        click(slack, "approval_approve", queued, user=LATE)  # acked: 200 from the process
        yield Busy(instance, own_db, gate, held, queued, "target")
    finally:
        gate.set()
        instance.stop()


def test_a_click_queued_behind_busy_decisions_runs_once_through_a_graceful_stop(
    busy: Busy, slack_api: FakeSlackApi
) -> None:
    assert busy.state(busy.queued) == "pending"  # queued: no thread was free to run it
    busy.terminate()
    wait_until(busy.draining, timeout=PATIENCE)
    busy.gate.set()  # the held decisions end; the queued click gets a thread
    assert busy.exit_code() == 0
    assert busy.state(busy.queued) == "done"
    assert busy.target not in busy.integrations()
    assert busy.audited(busy.queued) == [
        "request.created",
        "request.approved",
        "request.running",
        "integration.removed",
        "request.done",
    ]
    assert {busy.state(request_id) for request_id in busy.held} == {"denied"}
    assert not any(NOT_CARRIED_OUT in text for text in ephemeral_to(slack_api, LATE))


def test_a_click_still_queued_when_the_grace_is_over_is_not_run_and_its_clicker_is_told(
    busy: Busy, slack_api: FakeSlackApi
) -> None:
    busy.terminate()
    wait_until(
        lambda: any(NOT_CARRIED_OUT in t for t in ephemeral_to(slack_api, LATE)), timeout=PATIENCE
    )
    (told,) = [t for t in ephemeral_to(slack_api, LATE) if NOT_CARRIED_OUT in t]
    assert "nothing was changed. Please try again." in told
    # The Denies still running (telling their requesters, the request already denied) are cut
    # off by the exit: each clicker is told how the request ended, as the recovery of running
    # requests never comes back to it.
    cut = ENDED_CUT_OFF.format(what="deny", ended="was denied")
    wait_until(
        lambda: ephemeral_to(slack_api, BUSY).count(cut) == DECISION_THREADS, timeout=PATIENCE
    )
    assert busy.exit_code() == 0
    busy.gate.set()
    assert busy.state(busy.queued) == "pending"  # as it was: the next click decides it
    assert {busy.state(request_id) for request_id in busy.held} == {"denied"}
    assert busy.target in busy.integrations()
    assert busy.audited(busy.queued) == ["request.created"]


def test_roleup_socket_stops_on_sigterm_after_its_acked_work_and_exits_0(
    own_env: dict[str, str], tmp_path: Path, slack_api: FakeSlackApi, socket_mode_url: str
) -> None:
    slack_api.overrides["apps.connections.open"] = lambda call: {"ok": True, "url": socket_mode_url}
    env = {**os.environ, **own_env, "SLACK_APP_TOKEN": "xapp-1-A0001-0000-socketmodetoken"}
    log = tmp_path / "socket.log"
    process = start_socket(env, log, "--no-jobs")
    try:
        slack_api.wait_for("apps.connections.open", timeout=PATIENCE)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=PATIENCE) == 0  # not killed by the signal (-15)
    finally:
        process.kill()
    assert DRAINING in log.read_text()
