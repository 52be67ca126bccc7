"""A graceful stop of a real `roleup serve` (SIGTERM, as a deploy sends) whose grace ends while
a late /onboard check still runs: the person's modal, showing "Onboarding…", is told that RoleUp
restarted before it could confirm; no IAM user is made; the worker exits at once, before the
master's kill. The same for `roleup socket` on SIGTERM (Socket Mode's stand-in sends it the
command and the submission). The check is held by a PostgreSQL table lock (another process's
reads of SQLite in WAL mode never wait on a lock this long); the same on both stores
in-process: tests/security/test_stop_cuts_off_late_work.py."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

import psycopg
import pytest
from sqlalchemy import Engine, func, select

from bot.app import create_core
from bot.settings import Settings
from handlers.onboard.listeners import CUT_OFF
from storage.models import Group, ManagedPolicy, Request
from tests.e2e.instances import Instance
from tests.support.config import SIGNING_SECRET
from tests.support.modal import submission
from tests.support.onboard_modal import POLICY, fill, open_modal
from tests.support.seed import MANAGER, add_integration
from tests.support.sender import SlackSender
from tests.support.signing import command_body
from tests.support.slack_api import FakeSlackApi
from tests.support.socket_mode import SocketModeStandIn, start_socket
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.moto_server]

PATIENCE = 90.0  # how long to wait for the process (a bound on waiting, not on speed)
# gunicorn master's line for a worker that exited on its own (one it kills at graceful_timeout
# goes unlogged as it shuts down).
EXITED = re.compile(r"Worker \(pid:\d+\) exited with code 1")


@pytest.fixture
def prod(instances_db: Engine, instance_env: dict[str, str], aws) -> int:
    """Integration prod in the instance's store, with the group and policy the form picks."""
    core = create_core(Settings.from_env({**os.environ, **instance_env}))
    try:
        integration_id = add_integration(core)
        aws.create_group(GroupName="developers")
        document = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        aws.create_policy(PolicyName="ReadSome", PolicyDocument=json.dumps(document))
        with core.sessions.begin() as session:
            session.add(Group(integration_id=integration_id, name="developers"))
            session.add(ManagedPolicy(integration_id=integration_id, arn=POLICY, name="ReadSome"))
        return integration_id
    finally:
        core.engine.dispose()


@pytest.fixture
def serving(instance_env: dict[str, str], tmp_path: Path) -> Iterator[Instance]:
    instance = Instance("serve", instance_env, tmp_path, options=["--no-jobs"]).start()
    try:
        yield instance
    finally:
        instance.stop()


def locked_accounts(engine: Engine, tables: str = "accounts") -> psycopg.Connection:
    """A transaction holding the accounts table (or `tables`) so that nobody else may even read
    it, as a migration or a long VACUUM FULL would: a username's check waits on it."""
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(url)
    conn.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
    return conn


def waiting_on_a_lock(engine: Engine, at_least: int = 1) -> bool:
    with engine.connect() as conn:
        query = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return (conn.exec_driver_sql(query).scalar() or 0) >= at_least


def told_in_the_modal(slack_api: FakeSlackApi) -> None:
    """The modal, left saying "Onboarding…", gets the stop's message, while the check waits."""
    told = json.dumps(CUT_OFF.format(username="dora"))[1:-1]
    slack_api.wait_for(
        "views.update", where=lambda c: told in json.dumps(c.params), timeout=PATIENCE
    )


def nothing_made(slack_api: FakeSlackApi, instances_db: Engine, aws) -> None:
    assert len(slack_api.calls_to("views.update")) == 1  # the modal's last word
    with pytest.raises(aws.exceptions.NoSuchEntityException):
        aws.get_user(UserName="dora")
    with instances_db.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Request)) == 0


def test_a_late_onboarding_check_cut_off_by_the_stop_is_told_in_the_modal_and_makes_nothing(
    serving: Instance, prod: int, instances_db: Engine, slack_api: FakeSlackApi, aws
) -> None:
    slack = SlackSender(serving.url, SIGNING_SECRET, slack_api.response_url_base)
    view = open_modal(slack, slack_api)
    slack_api.reset()
    lock = locked_accounts(instances_db)
    try:
        acked = slack.interact(submission(view, fill(prod, "dora"), MANAGER))
        assert "Onboarding…" in json.dumps(acked.json(), ensure_ascii=False)
        wait_until(lambda: waiting_on_a_lock(instances_db), timeout=PATIENCE)
        assert serving.process is not None
        os.kill(serving.process.pid, signal.SIGTERM)
        told_in_the_modal(slack_api)
        assert serving.process.wait(timeout=PATIENCE) == 0
    finally:
        lock.close()
    assert EXITED.search(serving.log.read_text())  # on its own, not killed at graceful_timeout
    nothing_made(slack_api, instances_db, aws)


def test_a_stop_whose_store_also_holds_the_delivery_keys_still_exits_before_the_kill(
    serving: Instance, prod: int, instances_db: Engine, slack_api: FakeSlackApi, aws
) -> None:
    """The store stalls for the submission's delivery key too (the whole store hanging, as
    when its disk does): the worker tells the modal and exits on its own all the same, instead
    of waiting in the last write of those keys until the master kills it."""
    slack = SlackSender(serving.url, SIGNING_SECRET, slack_api.response_url_base)
    view = open_modal(slack, slack_api)
    slack_api.reset()
    lock = locked_accounts(instances_db, "accounts, slack_deliveries")
    try:
        slack.interact(submission(view, fill(prod, "dora"), MANAGER))
        # The check and the keys' writer both wait.
        wait_until(lambda: waiting_on_a_lock(instances_db, at_least=2), timeout=PATIENCE)
        assert serving.process is not None
        os.kill(serving.process.pid, signal.SIGTERM)
        told_in_the_modal(slack_api)
        assert serving.process.wait(timeout=PATIENCE) == 0
        assert EXITED.search(serving.log.read_text())  # on its own, the store still held
    finally:
        lock.close()
    nothing_made(slack_api, instances_db, aws)


def test_roleup_socket_cut_off_in_a_late_onboarding_check_tells_the_modal_and_exits_1(
    prod: int,
    instances_db: Engine,
    instance_env: dict[str, str],
    slack_api: FakeSlackApi,
    socket_mode: SocketModeStandIn,
    tmp_path: Path,
    aws,
) -> None:
    slack_api.overrides["apps.connections.open"] = lambda call: {"ok": True, "url": socket_mode.url}
    env = {**os.environ, **instance_env, "SLACK_APP_TOKEN": "xapp-1-A0001-0000-socketmodetoken"}
    process = start_socket(env, tmp_path / "socket.log", "--no-jobs")
    lock = None
    try:
        assert socket_mode.connected.wait(PATIENCE)
        command = parse_qsl(command_body("/onboard", response_url=slack_api.response_url_base))
        socket_mode.send("slash_commands", dict(command))
        (filled,) = slack_api.wait_for("views.update", timeout=PATIENCE)
        slack_api.reset()
        lock = locked_accounts(instances_db)
        body = submission(filled.params["view"], fill(prod, "dora"), MANAGER)
        acked = socket_mode.answer(socket_mode.send("interactive", body), timeout=PATIENCE)
        assert "Onboarding…" in json.dumps(acked, ensure_ascii=False)
        wait_until(lambda: waiting_on_a_lock(instances_db), timeout=PATIENCE)
        process.send_signal(signal.SIGTERM)
        told_in_the_modal(slack_api)
        # At once, with the check still waiting on the lock: a normal exit would wait for it.
        assert process.wait(timeout=PATIENCE) == 1
    finally:
        process.kill()
        if lock is not None:
            lock.close()
    nothing_made(slack_api, instances_db, aws)
