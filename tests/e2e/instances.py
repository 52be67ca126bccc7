"""Real `python -m bot serve` processes over one database, started and killed by tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, select

from storage.db import make_sessionmaker
from storage.models import AuditEvent
from tests.support import seed, waiting
from tests.support.config import BOT_TOKEN, SIGNING_SECRET, TEST_KEY
from tests.support.postgres import TempPostgres, free_port
from tests.support.slack_api import FakeSlackApi

ROOT = Path(__file__).resolve().parents[2]


def dedicated_postgres(server: TempPostgres | None) -> str:
    """A fresh, migrated database of its own on the test PostgreSQL server."""
    from storage.migrate import upgrade

    name = f"roleup_instances_{uuid.uuid4().hex[:8]}"
    if server is not None:
        url = server.create_database(name)
    else:
        import psycopg

        base = os.environ["ROLEUP_TEST_POSTGRES_URL"]
        with psycopg.connect(base.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = base.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    return url


def own_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated store on `backend`: a database of its own on PostgreSQL, a file under
    `tmp_path` on SQLite."""
    from storage.migrate import upgrade

    if backend == "postgresql":
        return dedicated_postgres(request.getfixturevalue("postgres_base"))
    url = f"sqlite:///{tmp_path / 'roleup.db'}"
    upgrade(url)
    return url


def common_env(moto_url: str, slack_api: FakeSlackApi) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_api.url,
        "ROLEUP_ENCRYPTION_KEYS": TEST_KEY,
        "AWS_ENDPOINT_URL": moto_url,
        "ROLEUP_SYNC_INTERVAL_UNIT_SECONDS": "1",
        "ROLEUP_RECONCILE_SECONDS": "1",
    }


class Instance:
    """One `roleup serve` in its own process group, logging to a file."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_dir: Path,
        workers: int = 1,
        options: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.workers = workers
        self.options = tuple(options)  # more of `serve`'s options, such as --no-jobs
        self.port = free_port()
        self.log = log_dir / f"{name}.log"
        self.env = {**os.environ, **env, "PORT": str(self.port)}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Instance:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bot",
                    "serve",
                    "--workers",
                    str(self.workers),
                    "--threads",
                    "2",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    *self.options,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: killing it takes its worker too
            )
        self._wait_healthy()
        return self

    def _wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never became healthy:\n{self.log.read_text()}")
            time.sleep(0.2)

    def pids(self) -> set[int]:
        """The master and its workers (the workers' pids name them in job claims)."""
        assert self.process is not None
        pids = {self.process.pid}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                pids.add(int(stat.parent.name))
        return pids

    def kill(self) -> None:
        """SIGKILL the whole group, as a crashed machine would go: no clean shutdown."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


class Worker:
    """One `roleup worker` (the scheduled jobs, no HTTP listener), logging to a file."""

    STARTED = "runs the scheduled jobs"

    def __init__(
        self, name: str, env: dict[str, str], log_dir: Path, options: Sequence[str] = ()
    ) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.env = {**os.environ, **env}
        self.options = list(options)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the process and return at once, without waiting for it to run its jobs."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "worker", *self.options],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.process

    def start(self, timeout: float = 60.0) -> Worker:
        self.launch()
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.STARTED not in self.log.read_text():
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never started:\n{self.log.read_text()}")
            time.sleep(0.2)
        return self

    def terminate(self) -> int:
        """SIGTERM, as a platform stops a process; its exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            raise AssertionError(f"{self.name} ignored SIGTERM:\n{self.log.read_text()}") from None


def catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler of its own for `signum` (SigCgt in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def add_integration_with_own_user(engine: Engine, aws: Any, name: str, every: int) -> None:
    """An integration with a working key of its own user in the moto account."""
    aws.create_user(UserName=f"roleup-{name}")
    key = aws.create_access_key(UserName=f"roleup-{name}")["AccessKey"]
    seed.add_integration(
        make_sessionmaker(engine),
        name,
        key=(key["AccessKeyId"], key["SecretAccessKey"]),
        **{**seed.UNATTENDED, "approvals_channel": f"C{name.upper()}"},
        sync_interval_minutes=every,
    )


def syncs(engine: Engine, integration: str) -> list[str]:
    """Outcomes of the syncs themselves (bot.services.sync's audit events)."""
    with engine.connect() as conn:
        return list(
            conn.scalars(
                select(AuditEvent.outcome)
                .where(AuditEvent.action == "sync", AuditEvent.integration == integration)
                .order_by(AuditEvent.id)
            )
        )


# Real processes: poll less often, wait longer.
wait_until = partial(waiting.wait_until, timeout=90.0, every=0.2)


def scheduled_syncs(engine: Engine, integration: str) -> list[tuple[int, str]]:
    """(slot, instance) of every scheduled sync of the integration, from the audit log."""
    with engine.connect() as conn:
        details = conn.scalars(
            select(AuditEvent.detail)
            .where(AuditEvent.action == "sync.scheduled", AuditEvent.integration == integration)
            .order_by(AuditEvent.id)
        ).all()
    return [(int(d["slot"]), str(d["instance"])) for d in details]


def pid_of(instance: str) -> int:
    return int(instance.rsplit(":", 1)[1])
