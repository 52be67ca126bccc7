"""Do acknowledgements stay fast while a big sync runs, in the server or in a worker?

Plain `roleup serve` runs the scheduled jobs (syncs, grant and account expiries, reviews, key
rotation, housekeeping) in its web processes; the Procfile runs `roleup serve --no-jobs` beside a
`roleup worker` that runs them. A sync of a large account is the heaviest job: this benchmark
measures `/accounts` ack latency at concurrency 10 while a sync of --users IAM users (half of
them inside the integration's prefix) runs inside the server, and while it runs in a worker
process, against the same load with nothing running, in alternating rounds, in one run:

* a moto server in its own process, seeded like bench/sync.py (each user in two of 20 groups,
  with managed policies); the integration `prod` synced once beforehand;
* two arrangements side by side, each over its own store (SQLite or a throwaway PostgreSQL) and
  the one Slack Web API stand-in: `python -m bot serve` with every scheduled job on (one
  machine), and `python -m bot serve --no-jobs` with `python -m bot worker` (the Procfile);
* "in serve" rounds: a manager types `/roleup sync prod` (the sync runs on the decision pool
  of a gunicorn worker, after the ack, as it does for anyone) and `/accounts prod` is sent at
  concurrency 10 until RoleUp posts the sync's result;
* "in a worker" rounds: the integration's interval is set so that the worker's next tick syncs
  it (one scheduled sync, seen begin and end in the audit log), and `/accounts prod` is sent to
  the no-jobs web process at concurrency 10 until it ends;
* idle rounds after each: as many `/accounts prod` to the same web process, nothing else running.

Prints p50, p99 and max for idle and under each arrangement's sync, the syncs' durations, the
load average, and the ratios of the p99s, the worker's last. Exit status 1 if a request failed
or a target was missed by the worker arrangement: p99 under the sync within --target-ratio of
idle and under --target-p99 seconds.

    .venv/bin/python bench/ack_under_jobs.py                   # SQLite, 5000 users
    .venv/bin/python bench/ack_under_jobs.py --db postgresql
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, func, select, update

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `python bench/ack_under_jobs.py`
    sys.path.insert(0, str(ROOT))

from bench.ack import (  # noqa: E402
    INTEGRATION,
    SIGNING_SECRET,
    USERS,
    Answers,
    Level,
    Server,
    database,
    free_port,
    load_average,
    roleup_env,
    send_commands,
    start_server,
    upgrade,
)
from bench.sync import PREFIX, moto_server  # noqa: E402
from tests.support.signing import command_body, signed_headers  # noqa: E402
from tests.support.slack_api import FakeSlackApi  # noqa: E402

CONCURRENCY = 10
SERVE = [sys.executable, "-m", "bot", "serve"]  # plain `roleup serve`: one machine
WORKER = [sys.executable, "-m", "bot", "worker"]  # the Procfile's `worker: roleup worker`
BATCH = 20  # /accounts commands sent between two looks at whether the sync is done
# The worker's store counts an integration's sync interval in seconds
# (ROLEUP_SYNC_INTERVAL_UNIT_SECONDS=1): 1 makes its next tick sync, NEVER keeps it quiet.
SYNC_NOW, NEVER = 1, 10_000_000
GIVE_UP = 600.0  # seconds: a sync that never ends fails the round instead of hanging it


def add_and_sync(env: dict[str, str], every: int = 24 * 60) -> None:
    """The integration `prod` over the moto server's prefix, synced once (in this process)."""
    from bot.services.aws import AwsClients, seal_key_pair
    from bot.services.container import Core
    from bot.services.sync import sync_integration
    from bot.settings import Settings
    from storage.crypto import SecretBox
    from storage.db import make_engine, make_sessionmaker
    from storage.models import Integration

    keys = tuple(env["ROLEUP_ENCRYPTION_KEYS"].split(","))
    engine = make_engine(env["DATABASE_URL"])
    core = Core(
        settings=Settings(database_url=env["DATABASE_URL"], encryption_keys=keys),
        engine=engine,
        sessions=make_sessionmaker(engine),
        box=SecretBox(list(keys)),
        aws=AwsClients(endpoint_url=env["AWS_ENDPOINT_URL"]),
    )
    try:
        with core.sessions.begin() as session:
            row = Integration(
                name=INTEGRATION,
                path_prefix=PREFIX,
                credentials_ciphertext=seal_key_pair(core.require_box(), "bench", "bench"),
                managers=USERS,
                created_by="UADMIN",
                sync_interval_minutes=every,  # only the benchmark's own syncs run
            )
            session.add(row)
            session.flush()
            integration_id = row.id
        sync_integration(core, integration_id, actor="bench")
    finally:
        engine.dispose()


def start_sync(server: Server, answers: Answers, index: int) -> str:
    """Type `/roleup sync prod`; the name under which its two answers are counted."""
    import requests

    name = f"sync{index}"
    body = command_body(
        "/roleup",
        f"sync {INTEGRATION}",
        user_id=USERS[0],
        trigger_id=f"{index}.sync.trigger",
        response_url=answers.url_for(name, index),
    )
    response = requests.post(
        f"{server.url}/slack/events",
        data=body,
        headers=signed_headers(SIGNING_SECRET, body),
        timeout=30,
    )
    response.raise_for_status()
    answers.wait(name, 1, timeout=30)  # "Syncing prod…": the sync has begun
    return name


def busy_round(server: Server, answers: Answers, index: int) -> tuple[Level, float]:
    level = Level(CONCURRENCY)
    started = time.monotonic()
    name = start_sync(server, answers, index)
    while answers.count(name) < 2:  # the second answer is the sync's result
        level.add(send_commands(server, "/accounts", INTEGRATION, CONCURRENCY, BATCH, answers))
        if time.monotonic() - started > 600:
            level.failures.append("the sync did not finish in 10 minutes")
            break
    return level, time.monotonic() - started


def scheduled_syncs(engine: Engine) -> tuple[int, int]:
    """(scheduled syncs begun, syncs ended by the scheduler), from the audit log."""
    from storage.models import AuditEvent

    def count(action: str) -> int:
        statement = select(func.count()).where(
            AuditEvent.action == action, AuditEvent.actor == "scheduler"
        )
        return int(conn.scalar(statement) or 0)

    with engine.connect() as conn:
        return count("sync.scheduled"), count("sync")


def set_interval(engine: Engine, every: int) -> None:
    from storage.models import Integration

    with engine.begin() as conn:
        conn.execute(update(Integration).values(sync_interval_minutes=every))


def worker_round(server: Server, engine: Engine, answers: Answers) -> tuple[Level, float]:
    """One scheduled sync in the worker, with `/accounts` sent to the no-jobs web meanwhile."""
    level = Level(CONCURRENCY)
    begun, ended = scheduled_syncs(engine)
    started = time.monotonic()
    set_interval(engine, SYNC_NOW)
    while scheduled_syncs(engine)[0] == begun:  # the worker reconciles, then its tick claims it
        if time.monotonic() - started > GIVE_UP:
            level.failures.append("the worker never began the sync")
            return level, time.monotonic() - started
        time.sleep(0.05)
    set_interval(engine, NEVER)  # one sync a round (a tick during this one is skipped)
    started = time.monotonic()
    while scheduled_syncs(engine)[1] == ended:
        level.add(send_commands(server, "/accounts", INTEGRATION, CONCURRENCY, BATCH, answers))
        if time.monotonic() - started > GIVE_UP:
            level.failures.append("the worker's sync did not finish in 10 minutes")
            break
    return level, time.monotonic() - started


@contextlib.contextmanager
def worker_arrangement(
    args: argparse.Namespace, api_url: str, moto_url: str, workdir: Path
) -> Iterator[tuple[Server, Engine]]:
    """`serve --no-jobs` and a `worker` over a store of their own: (the web, the store)."""
    from storage.db import make_engine

    workdir.mkdir()
    with database(args.db, workdir) as database_url:
        env = roleup_env(database_url, api_url, aws_endpoint=moto_url)
        env.update(ROLEUP_SYNC_INTERVAL_UNIT_SECONDS="1", ROLEUP_RECONCILE_SECONDS="1")
        upgrade(env)
        add_and_sync(env, every=NEVER)
        engine = make_engine(database_url)
        port = free_port()
        bind = ["--bind", f"127.0.0.1:{port}", *gunicorn_options(args), "--no-jobs"]
        web = start_server("worker-web", [*SERVE, *bind], env, port, workdir)
        with (workdir / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                WORKER, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            yield web, engine
        finally:
            worker.terminate()
            worker.wait(timeout=60)
            web.stop()
            engine.dispose()


def gunicorn_options(args: argparse.Namespace) -> list[str]:
    return ["--workers", str(args.workers), "--threads", str(args.threads)]


@dataclass
class Rounds:
    idle: Level = field(default_factory=lambda: Level(CONCURRENCY))
    in_serve: Level = field(default_factory=lambda: Level(CONCURRENCY))
    in_worker: Level = field(default_factory=lambda: Level(CONCURRENCY))
    serve_syncs: list[float] = field(default_factory=list)
    worker_syncs: list[float] = field(default_factory=list)

    def idle_after(self, server: Server, busy: Level, answers: Answers) -> None:
        """As many commands to the same web process with nothing else running."""
        count = max(len(busy.latencies), BATCH)
        self.idle.add(send_commands(server, "/accounts", INTEGRATION, CONCURRENCY, count, answers))


def run(args: argparse.Namespace) -> int:
    api = FakeSlackApi().start()
    answers = Answers(api)
    rounds = Rounds()
    try:
        with (
            moto_server(args.users, 20) as moto_url,  # seeded in its own process
            tempfile.TemporaryDirectory(prefix="roleup-bench-") as tmp,
            database(args.db, Path(tmp)) as database_url,
        ):
            env = roleup_env(database_url, api.url, aws_endpoint=moto_url)
            upgrade(env)
            add_and_sync(env)
            port = free_port()
            server = start_server(
                "roleup",
                [*SERVE, "--bind", f"127.0.0.1:{port}", *gunicorn_options(args)],
                env,
                port,
                Path(tmp),
            )
            try:
                with worker_arrangement(args, api.url, moto_url, Path(tmp) / "worker") as (
                    web,
                    engine,
                ):
                    for warm in (server, web):
                        send_commands(warm, "/accounts", INTEGRATION, 5, 20, answers)
                    for index in range(args.rounds):
                        level, seconds = busy_round(server, answers, index)
                        rounds.in_serve.add(level)
                        rounds.serve_syncs.append(seconds)
                        rounds.idle_after(server, level, answers)
                        level, seconds = worker_round(web, engine, answers)
                        rounds.in_worker.add(level)
                        rounds.worker_syncs.append(seconds)
                        rounds.idle_after(web, level, answers)
            finally:
                server.stop()
    finally:
        api.stop()
    return report(args, rounds)


def report(args: argparse.Namespace, rounds: Rounds) -> int:
    print(
        f"`/accounts {INTEGRATION}` at concurrency {CONCURRENCY} while a sync of {args.users} IAM "
        f"users ({args.users // 2} in the prefix) runs inside `roleup serve` or in a "
        f"`roleup worker` beside `roleup serve --no-jobs`: {args.db} store, gunicorn gthread "
        f"{args.workers} workers x {args.threads} threads, {os.cpu_count()} CPUs, loopback; "
        f"load average (1/5/15 min) at the end {load_average()}"
    )
    for name, syncs in (("in serve", rounds.serve_syncs), ("in a worker", rounds.worker_syncs)):
        print(f"syncs {name}: {', '.join(f'{s:.1f} s' for s in syncs)}")
    print(f"{'':<14} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'fail':>4}")
    levels = (
        ("idle", rounds.idle),
        ("sync in serve", rounds.in_serve),
        ("sync in worker", rounds.in_worker),
    )
    for name, level in levels:
        print(
            f"{name:<14} {len(level.latencies):>5} {level.p50 * 1000:>8.1f} "
            f"{level.p99 * 1000:>8.1f} {level.max * 1000:>8.1f} {len(level.failures):>4}"
        )
    failures = [f for _, level in levels for f in level.failures]
    if failures:
        print(f"  failures: {failures[:3]}")
    idle = rounds.idle.p99
    in_serve = rounds.in_serve.p99 / idle if idle > 0 else float("inf")
    in_worker = rounds.in_worker.p99 / idle if idle > 0 else float("inf")
    met = in_worker <= args.target_ratio and rounds.in_worker.p99 <= args.target_p99
    print(f"p99 with the sync in serve ÷ idle: {in_serve:.2f}x")
    print(
        f"p99 with the sync in a worker ÷ idle: {in_worker:.2f}x (target <= "
        f"{args.target_ratio}x, and under {args.target_p99} s: {rounds.in_worker.p99:.3f} s)"
    )
    ok = met and not failures
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--users", type=int, default=5000, help="IAM users in the account")
    parser.add_argument("--rounds", type=int, default=3, help="busy and idle rounds, alternating")
    parser.add_argument("--workers", type=int, default=2, help="as `roleup serve` defaults")
    parser.add_argument("--threads", type=int, default=8, help="as `roleup serve` defaults")
    parser.add_argument("--target-ratio", type=float, default=1.5)
    parser.add_argument("--target-p99", type=float, default=1.0, help="seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    raise SystemExit(main())
