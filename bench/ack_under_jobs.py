"""Do acknowledgements stay fast while a big sync runs inside the server?

`roleup serve` runs the scheduled jobs (syncs, grant and account expiries, reviews, key
rotation, housekeeping) in its web processes. A sync of a large account is the heaviest of
them: this benchmark measures `/accounts` ack latency at concurrency 10 while a sync of
--users IAM users (half of them inside the integration's prefix) runs in the server, against
the same load with the server idle, in alternating rounds, in one run:

* a moto server in its own process, seeded like bench/sync.py (each user in two of 20 groups,
  with managed policies); the integration `prod` synced once beforehand;
* `python -m bot serve` as the Procfile runs it, over SQLite or a throwaway PostgreSQL, the
  Slack Web API stand-in, every scheduled job on;
* a busy round: a manager types `/roleup sync prod` (the sync runs in a listener thread of a
  worker, as it does for anyone) and `/accounts prod` is sent at concurrency 10 until RoleUp
  posts the sync's result; an idle round: as many `/accounts prod` with nothing else running.

Prints p50, p99 and max for idle and under the sync, the sync's duration, the load average, and
the ratio of the p99s last. Exit status 1 if a request failed or a target was missed: p99 under
the sync within --target-ratio of idle and under --target-p99 seconds.

    .venv/bin/python bench/ack_under_jobs.py                   # SQLite, 5000 users
    .venv/bin/python bench/ack_under_jobs.py --db postgresql
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

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
SERVE = [sys.executable, "-m", "bot", "serve"]  # the Procfile's `roleup serve`
BATCH = 20  # /accounts commands sent between two looks at whether the sync is done


def add_and_sync(env: dict[str, str]) -> None:
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
                sync_interval_minutes=24 * 60,  # only the benchmark's own syncs run
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


def gunicorn_options(args: argparse.Namespace) -> list[str]:
    return ["--workers", str(args.workers), "--threads", str(args.threads)]


def run(args: argparse.Namespace) -> int:
    api = FakeSlackApi().start()
    answers = Answers(api)
    idle, busy = Level(CONCURRENCY), Level(CONCURRENCY)
    syncs: list[float] = []
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
                send_commands(server, "/accounts", INTEGRATION, 5, 20, answers)  # warm up
                for index in range(args.rounds):
                    level, seconds = busy_round(server, answers, index)
                    busy.add(level)
                    syncs.append(seconds)
                    # As many commands with nothing else running.
                    idle.add(
                        send_commands(
                            server,
                            "/accounts",
                            INTEGRATION,
                            CONCURRENCY,
                            max(len(level.latencies), BATCH),
                            answers,
                        )
                    )
            finally:
                server.stop()
    finally:
        api.stop()
    return report(args, idle, busy, syncs)


def report(args: argparse.Namespace, idle: Level, busy: Level, syncs: list[float]) -> int:
    print(
        f"`/accounts {INTEGRATION}` at concurrency {CONCURRENCY} while `/roleup sync` of "
        f"{args.users} IAM users ({args.users // 2} in the prefix) runs in the server: "
        f"{args.db} store, gunicorn gthread {args.workers} workers x {args.threads} threads, "
        f"{os.cpu_count()} CPUs, loopback; load average (1/5/15 min) at the end {load_average()}"
    )
    print(f"syncs: {', '.join(f'{s:.1f} s' for s in syncs)}")
    print(f"{'':<12} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'fail':>4}")
    for name, level in (("idle", idle), ("under sync", busy)):
        print(
            f"{name:<12} {len(level.latencies):>5} {level.p50 * 1000:>8.1f} "
            f"{level.p99 * 1000:>8.1f} {level.max * 1000:>8.1f} {len(level.failures):>4}"
        )
    ok = not idle.failures and not busy.failures
    if not ok:
        print(f"  failures: {(busy.failures + idle.failures)[:3]}")
    ratio = busy.p99 / idle.p99 if idle.p99 > 0 else float("inf")
    if ratio > args.target_ratio or busy.p99 > args.target_p99:
        ok = False
    print(
        f"p99 under the sync ÷ idle: {ratio:.2f}x (target <= {args.target_ratio}x, "
        f"and under {args.target_p99} s: {busy.p99:.3f} s)"
    )
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
