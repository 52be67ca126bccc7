"""Everything the demo runs, started locally and thrown away after: a temporary SQLite store, an
in-process moto IAM seeded with a small company, the Slack stand-in, and the real RoleUp app
served on a loopback port, with a demo integration added and synced.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from bot.demo.client import SignedSlack
from bot.demo.console import Console
from bot.demo.fake_slack import FakeSlackApi
from bot.demo.moto_gaps import fill_moto_gaps
from bot.demo.seed import DemoCompany, seed_iam, setup_integration, start_review
from bot.demo.terminal import Terminal
from bot.demo.workspace import Person, Workspace
from bot.settings import Settings

logger = logging.getLogger("roleup.demo")

MANAGER = Person("UDEMOMAYA", "maya", "Maya Manager", "manager and admin")
APPROVER = Person("UDEMOARJUN", "arjun", "Arjun Approver", "approver")
NEW_HIRE = Person("UDEMOALICE", "alice", "Alice Doe", "a new hire")
GENERAL = ("CDEMOGENERAL", "general")
APPROVALS = ("CDEMOAPPROVALS", "aws-approvals")
QUIET_SECONDS = 0.1
# Libraries say only what went wrong; the app keeps its warnings (they mean something here).
QUIET_LOGGERS = {
    "alembic": logging.ERROR,
    "werkzeug": logging.ERROR,
    "slack_bolt": logging.ERROR,
    "slack_sdk": logging.ERROR,
    "botocore": logging.ERROR,
    "moto": logging.ERROR,
    "apscheduler": logging.ERROR,
    "roleup": logging.WARNING,
    "roleup.bolt": logging.ERROR,  # Bolt's own notes about how it was built
    "bot": logging.WARNING,
    "handlers": logging.WARNING,
    "storage": logging.WARNING,
}


GRANTS_TICK_SECONDS = 5


class Activity:
    """Counts work the app has queued on its executor, so the demo knows when it is done."""

    def __init__(self) -> None:
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def watch(self, executor: Executor) -> None:
        original = executor.submit

        def submit(fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            with self._lock:
                self._pending += 1
            try:
                future = original(fn, *args, **kwargs)
            except BaseException:
                self._done()
                raise
            future.add_done_callback(lambda _future: self._done())
            return future

        # Bolt holds this executor object; wrapping the bound method counts its submissions.
        executor.submit = submit  # type: ignore[method-assign]

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1


class DemoWorld:
    """Start with `start()`, always `close()`; `settle()` waits until the app is idle."""

    def __init__(self, settings: Settings, *, verbose: bool = False) -> None:
        self.base_settings = settings
        self.verbose = verbose
        self.players = [MANAGER, APPROVER, NEW_HIRE]
        self.command_channel = GENERAL[0]
        self.activity = Activity()
        self.company: DemoCompany | None = None
        self._cleanups: list[Any] = []
        self.api: FakeSlackApi
        self.workspace: Workspace
        self.slack: SignedSlack
        self.roleup: Any
        self.url = ""

    def start(self) -> DemoWorld:
        try:
            self._quiet_logs()
            self._start_slack()
            self._start_aws()
            self._start_app()
            self.company = setup_integration(
                self.roleup.core,
                self.iam_key,
                managers=[MANAGER.id],
                approvers=[APPROVER.id],
                approvals_channel=APPROVALS[0],
                links={NEW_HIRE.name: NEW_HIRE.id},
            )
            start_review(self.roleup.core, self.company, MANAGER.id)
        except BaseException:
            self.close()
            raise
        return self

    def _quiet_logs(self) -> None:
        if self.verbose:
            return
        for name, level in QUIET_LOGGERS.items():
            log = logging.getLogger(name)
            previous = log.level
            log.setLevel(level)
            self._cleanups.append(lambda log=log, previous=previous: log.setLevel(previous))

    def _start_slack(self) -> None:
        self.api = FakeSlackApi().start()
        self._cleanups.append(self.api.stop)
        self.workspace = Workspace(self.api)
        for person in (MANAGER, APPROVER, NEW_HIRE):
            self.workspace.add_person(person)
        members = {MANAGER.id, APPROVER.id}
        self.workspace.add_channel(*GENERAL, members | {NEW_HIRE.id})
        self.workspace.add_channel(*APPROVALS, members)

    def _start_aws(self) -> None:
        from moto import mock_aws

        # The demo's IAM lives in this process; an endpoint from the environment would send
        # boto3 elsewhere, so it is set aside while the demo runs.
        saved = os.environ.pop("AWS_ENDPOINT_URL", None)
        if saved is not None:
            self._cleanups.append(lambda: os.environ.__setitem__("AWS_ENDPOINT_URL", saved))
        # AWS managed policies (ReadOnlyAccess, ...) exist in the demo account as they do in AWS.
        managed = os.environ.get("MOTO_IAM_LOAD_MANAGED_POLICIES")
        os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        self._cleanups.append(lambda: _restore_env("MOTO_IAM_LOAD_MANAGED_POLICIES", managed))
        self._cleanups.append(fill_moto_gaps())
        mock = mock_aws()
        mock.start()
        # Its data goes with the process; a later mock_aws() resets on start anyway.
        self._cleanups.append(lambda: mock.stop(remove_data=False))
        self.iam_key = seed_iam()

    def _start_app(self) -> None:
        from bot.app import create_app
        from storage.crypto import generate_key
        from storage.migrate import upgrade

        folder = Path(tempfile.mkdtemp(prefix="roleup-demo-"))
        self._cleanups.append(lambda: shutil.rmtree(folder, ignore_errors=True))
        database_url = f"sqlite:///{folder / 'roleup.db'}"
        upgrade(database_url)
        server = make_server("127.0.0.1", 0, _not_ready, threaded=True)
        self.url = f"http://127.0.0.1:{server.server_port}"
        signing_secret = secrets.token_hex(16)
        settings = dataclasses.replace(
            self.base_settings,
            database_url=database_url,
            slack_bot_token="xoxb-roleup-demo",  # noqa: S106 - the stand-in accepts any token
            slack_signing_secret=signing_secret,
            slack_app_token=None,
            slack_api_url=self.api.url,
            encryption_keys=(generate_key(),),
            admins=frozenset({MANAGER.id}),
            public_url=self.url,
            aws_endpoint_url=None,
            scheduler_enabled=False,
        )
        self.roleup = create_app(settings)
        self._cleanups.append(self.roleup.close)
        # Bolt's listeners, and the pools they hand work to after their ack (listings, clicks).
        for pool in (self.roleup.executor, self.roleup.core.after_ack, self.roleup.core.decisions):
            if pool is not None:
                self.activity.watch(pool)
        server.app = self.roleup.web
        thread = threading.Thread(target=server.serve_forever, daemon=True, name="roleup-demo-web")
        thread.start()
        self._cleanups.append(server.server_close)
        self._cleanups.append(server.shutdown)
        self.slack = SignedSlack(self.url, signing_secret)
        self._start_grants_ticker()

    def _start_grants_ticker(self) -> None:
        """The one scheduled job the demo runs: grants end (and remind) by themselves, so a
        grant given for a minute is seen ending. Syncs and the rest stay off."""
        from bot.scheduler import tend_grants

        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(GRANTS_TICK_SECONDS):
                try:
                    tend_grants(self.roleup.core, "demo")
                except Exception:  # the demo goes on; the next tick tries again
                    logger.debug("demo grants tick failed", exc_info=True)

        thread = threading.Thread(target=tick, daemon=True, name="roleup-demo-grants")
        thread.start()
        self._cleanups.append(stop.set)

    def terminal(self, console: Console) -> Terminal:
        """The terminal that plays Slack in this world, starting as the manager."""
        return Terminal(
            console=console,
            workspace=self.workspace,
            slack=self.slack,
            players=self.players,
            command_channel=self.command_channel,
            settle=self.settle,
        )

    def banner(self) -> list[str]:
        company = self.company
        people = ", ".join(company.users) if company else ""
        lines = [
            f"RoleUp is running at {self.url} (health: {self.url}/healthz).",
            f"AWS account 123456789012 (moto) has IAM users {people} under /people/;",
            "RoleUp's integration `demo` manages them. Nothing here reaches Slack or AWS.",
        ]
        if company and not company.synced:
            lines.append("(the sync service is not in this build: /accounts starts empty)")
        if company and company.review is not None:
            lines.append(
                f"Access review #{company.review} of `demo` is open: Maya decides its accounts "
                "in the Home tab (`home`, then a number: Keep, Remove from group…, Offboard)."
            )
        return lines

    def settle(self, timeout: float = 60.0) -> bool:
        """Wait until the app has no queued work and the Slack stand-in has been quiet a moment."""
        deadline = time.monotonic() + timeout
        seen = len(self.api.calls)
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            count = len(self.api.calls)
            if self.activity.pending or self.api.busy or count != seen:
                seen, quiet_since = count, None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= QUIET_SECONDS:
                return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        while self._cleanups:
            cleanup = self._cleanups.pop()
            try:
                cleanup()
            except Exception:  # closing must go on whatever one part does
                logger.debug("demo clean-up step failed", exc_info=True)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _not_ready(environ: Any, start_response: Any) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]
