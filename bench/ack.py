"""How fast RoleUp acknowledges `/accounts`, and what each command costs the server, next to a
Bolt app that only acks.

Slack gives an app 3 seconds to acknowledge a command, and on a small machine the work that
follows each ack (store queries, Block Kit, the post to `response_url`) competes with the next
acks, so both the ack latency and the server's CPU per command matter. For each store (SQLite,
then a throwaway PostgreSQL), this benchmark starts, in one run and on loopback only:

* `python -m bot serve` exactly as the Procfile runs it (gunicorn, gthread workers) over that
  store, seeded with an integration `prod` of --accounts IAM accounts (each in two of 20
  groups) managed by the benchmark's users, and the recording Slack Web API stand-in, and
* a bare Bolt app behind the same Flask adapter and the same gunicorn options (worker class,
  workers, threads) whose only listener acks, with Bolt's defaults (`bare`: the floor the
  targets are measured against), and
* the same bare app with `process_before_response=True` (`bare-pbr`, "bare, same mode": the
  mode RoleUp runs its listeners in, bot.app), so RoleUp's figure can be read against a floor
  in its own mode too, and nobody can say it was bought by changing the floor,

then sends really signed `/accounts prod` commands to each at concurrency 1, 10 and 50, the
three apps alternating in rounds, and prints per level p50, p99 and max of the ack latency, the p99
of the answer's (until it was there: in the ack, or posted to `response_url`), how many
commands were answered in their ack, and the server's CPU per command: utime + stime of the
gunicorn master and its workers (from /proc/<pid>/stat) before and after each round, the
round ending when every command has had its answer, in its ack or posted to `response_url`
after it (so work after an ack is counted), divided by the commands sent; on PostgreSQL also
the store's (`store`: the PostgreSQL server's processes over the same span, CPU the same
cores give, not in the targets' figure). The ratios come last, against both floors. Exit
status 1 if a request failed or a target was missed: RoleUp's p99 under --target-p99 seconds
and within --target-ratio of the bare app's (Bolt's defaults) at every level, and its CPU per
command within --target-cpu of the bare app's.

    .venv/bin/python bench/ack.py                          # both stores, `/accounts prod`
    .venv/bin/python bench/ack.py --db postgresql
    .venv/bin/python bench/ack.py --command /roleup --text help
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `python bench/ack.py`
    sys.path.insert(0, str(ROOT))

from tests.support.signing import command_body, signed_headers  # noqa: E402
from tests.support.slack_api import FakeSlackApi  # noqa: E402

SIGNING_SECRET = "bench-signing-secret-0c1d"
BOT_TOKEN = "xoxb-bench-token-0000"
LEVELS = (1, 10, 50)
WARMUP = 20
ROUNDS = 5  # per level, alternating the apps
USERS = [f"UBENCH{i}" for i in range(7)]  # who types the commands: the integration's managers
INTEGRATION = "prod"
GROUPS = 20
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_TRIGGERS = itertools.count(1)  # every command its own trigger_id, as Slack sends them


# --- the bare app: runs in its own process, `python bench/ack.py --serve-bare HOST:PORT` ------
BARE, SAME_MODE = "bare", "bare-pbr"
APPS = (BARE, SAME_MODE, "roleup")  # the order they take turns in, and are printed in


def serve_bare(bind: str, workers: int, threads: int, api_url: str) -> None:
    """A Bolt app whose one listener acks, under the gunicorn options `roleup serve` uses
    (with process_before_response when BENCH_SAME_MODE is set: the mode RoleUp runs in)."""
    from gunicorn.app.base import BaseApplication

    class BareServer(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": bind,
                "workers": workers,
                "threads": threads,
                "worker_class": "gthread",
                "timeout": 60,
                "graceful_timeout": 20,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "warning",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return _bare_flask(api_url, same_mode=bool(os.environ.get("BENCH_SAME_MODE")))

    BareServer().run()


def _bare_flask(api_url: str, *, same_mode: bool) -> Any:
    from concurrent.futures import ThreadPoolExecutor

    from flask import Flask, request
    from slack_bolt import Ack, App
    from slack_bolt.adapter.flask import SlackRequestHandler
    from slack_sdk import WebClient

    bolt = App(
        token=BOT_TOKEN,
        signing_secret=SIGNING_SECRET,
        client=WebClient(token=BOT_TOKEN, base_url=api_url),
        token_verification_enabled=False,
        # Bolt's default listener pool; with process_before_response, as bot.app.create_app
        # builds it, the listener runs in the request's thread and the pool is not used.
        listener_executor=ThreadPoolExecutor(max_workers=16),
        process_before_response=same_mode,
    )

    @bolt.command(_bench_command())
    def only_ack(ack: Ack) -> None:
        ack()

    web = Flask("bare")
    handler = SlackRequestHandler(bolt)

    @web.post("/slack/events")
    def events() -> Any:
        return handler.handle(request)

    @web.get("/healthz")
    def healthz() -> Any:
        return "ok"

    return web


def _bench_command() -> str:
    return os.environ.get("BENCH_COMMAND", "/accounts")


# --- servers ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            # Its own process group (start_new_session): the gunicorn master and its workers.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def cpu_seconds(self) -> float:
        """utime + stime of the master and its live workers, from the kernel's own counts."""
        return sum(_cpu_of(pid) for pid in [self.process.pid, *_children(self.process.pid)])


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 onwards


def _cpu_of(pid: int) -> float:
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return 0.0  # gone meanwhile
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def store_cpu(database_url: str) -> Callable[[], float]:
    """The CPU seconds so far of the PostgreSQL server behind `database_url` (its postmaster
    and every backend and helper process it started, ended ones not counted); 0 on SQLite,
    which runs in the server's own processes."""
    if not database_url.startswith("postgresql"):
        return lambda: 0.0
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://")) as pg:
        row = pg.execute("SHOW data_directory").fetchone()
    assert row is not None
    postmaster = int((Path(row[0]) / "postmaster.pid").read_text().split()[0])
    return lambda: sum(_cpu_of(pid) for pid in [postmaster, *_children(postmaster)])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(_stat_fields(int(entry.name))[1]) == pid:
                found.append(int(entry.name))
    return found


def start_server(name: str, argv: list[str], env: dict[str, str], port: int, logs: Path) -> Server:
    log = logs / f"{name}.log"
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited at start:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return server
        if time.monotonic() > deadline:
            server.stop()
            raise SystemExit(f"{name} did not answer /healthz in 60 s:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'roleup.db'}"
        return
    from tests.support.postgres import TempPostgres

    postgres = TempPostgres()
    postgres.start()
    try:
        yield postgres.create_database("roleup_bench")
    finally:
        postgres.stop()


def roleup_env(database_url: str, api_url: str, aws_endpoint: str | None = None) -> dict[str, str]:
    from storage.crypto import generate_key

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLACK_", "ROLEUP_"))}
    env.update(
        DATABASE_URL=database_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=api_url,
        ROLEUP_ENCRYPTION_KEYS=generate_key(),
        ROLEUP_ADMINS="UADMIN",
        # By default no AWS is reachable: an endpoint on loopback that nothing listens on.
        AWS_ENDPOINT_URL=aws_endpoint or f"http://127.0.0.1:{free_port()}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # a placeholder: nothing answers there, or moto
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONUNBUFFERED="1",
    )
    return env


def upgrade(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def seed_accounts(env: dict[str, str], accounts: int) -> None:
    """The integration `prod` as a sync would have left it: `accounts` accounts, each in two of
    20 groups, every tenth linked to a Slack user; synced just now, next sync in a day. As a
    team using time-bound access has it, every fourth account holds its second group for a
    while (a grant ending in a month) and every tenth is onboarded until a date. A PostgreSQL
    store is analyzed, as autovacuum keeps one in use."""
    from datetime import timedelta

    from sqlalchemy import insert

    from bot.services.aws import seal_key_pair
    from storage.crypto import SecretBox
    from storage.db import make_engine, make_sessionmaker
    from storage.models import (
        Account,
        AccountExpiry,
        Grant,
        Group,
        Integration,
        Membership,
        utcnow,
    )

    engine = make_engine(env["DATABASE_URL"])
    box = SecretBox(env["ROLEUP_ENCRYPTION_KEYS"].split(","))
    now = utcnow()
    try:
        with make_sessionmaker(engine).begin() as session:
            row = Integration(
                name=INTEGRATION,
                path_prefix="/",
                credentials_ciphertext=seal_key_pair(box, "AKIABENCH00000000000", "bench"),
                access_key_hint="AKIA…0000",
                managers=USERS,
                created_by="UADMIN",
                sync_interval_minutes=24 * 60,
                last_sync_at=now,
                last_sync_status="ok",
            )
            session.add(row)
            session.flush()
            groups = [Group(integration_id=row.id, name=f"team-{g:02d}") for g in range(GROUPS)]
            session.add_all(groups)
            session.flush()
            session.execute(
                insert(Account),
                [
                    {
                        "integration_id": row.id,
                        "user_name": f"user-{n:04d}",
                        "user_id": f"AIDABENCH{n:08d}",
                        "path": "/",
                        "created_at": now,
                        "slack_user_id": USERS[n % len(USERS)] if n % 10 == 0 else None,
                        "tags": {},
                        "inline_policies": [],
                        "last_seen_at": now,
                    }
                    for n in range(accounts)
                ],
            )
            ids = sorted(session.scalars(Account.__table__.select().with_only_columns(Account.id)))
            session.execute(
                insert(Membership),
                [
                    {"account_id": account_id, "group_id": groups[(n + k) % GROUPS].id}
                    for n, account_id in enumerate(ids)
                    for k in (0, 1)
                ],
            )
            ends = now + timedelta(days=30)
            session.execute(
                insert(Grant),
                [
                    {
                        "integration_id": row.id,
                        "user_name": f"user-{n:04d}",
                        "group_name": groups[(n + 1) % GROUPS].name,
                        "requester": "UADMIN",
                        "starts_at": now,
                        "ends_at": ends,
                    }
                    for n in range(0, accounts, 4)
                ],
            )
            session.execute(
                insert(AccountExpiry),
                [
                    {
                        "integration_id": row.id,
                        "user_name": f"user-{n:04d}",
                        "requester": "UADMIN",
                        "expires_at": now + timedelta(days=60),
                    }
                    for n in range(0, accounts, 10)
                ],
            )
        if engine.dialect.name == "postgresql":
            # As autovacuum keeps a store in use: its statistics, which choose the plans (and
            # would otherwise arrive a minute into the run, changing them half-way).
            with engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT")
                connection.exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()


def start_pair(
    args: argparse.Namespace, env: dict[str, str], workdir: Path, api: FakeSlackApi
) -> dict[str, Server]:
    """RoleUp's `serve` and the two bare apps, same gunicorn options."""
    roleup_port = free_port()
    shared = ["--workers", str(args.workers), "--threads", str(args.threads)]
    roleup = start_server(
        "roleup",
        # The Procfile's `roleup serve`.
        [sys.executable, "-m", "bot", "serve", "--bind", f"127.0.0.1:{roleup_port}", *shared],
        env,
        roleup_port,
        workdir,
    )
    servers = {"roleup": roleup}
    try:
        for name, same_mode in ((BARE, ""), (SAME_MODE, "1")):
            port = free_port()
            servers[name] = start_server(
                name,
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--serve-bare",
                    f"127.0.0.1:{port}",
                    "--api-url",
                    api.url,
                    *shared,
                ],
                {**env, "BENCH_COMMAND": args.command, "BENCH_SAME_MODE": same_mode},
                port,
                workdir,
            )
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


# --- load ---------------------------------------------------------------------------------
@dataclass
class Level:
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0
    # The PostgreSQL server's processes' CPU over the same span (SQLite runs in the workers).
    store_cpu_seconds: float = 0.0
    commands: int = 0
    in_ack: int = 0  # commands whose ack carried the answer (Block Kit) itself
    # Seconds from sending a command until its answer was there, in its ack or posted after it.
    answered: list[float] = field(default_factory=list)
    waiting: dict[int, float] = field(default_factory=dict)  # trigger -> sent, answer posted
    round_cpu_ms: list[float] = field(default_factory=list)  # each alternated round's own

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
        return ordered[index]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @property
    def p99(self) -> float:
        return self.pct(0.99)

    @property
    def answer_p99(self) -> float:
        return Level(self.concurrency, self.answered).p99

    @property
    def max(self) -> float:
        return max(self.latencies, default=float("nan"))

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_seconds / self.commands if self.commands else float("nan")

    @property
    def store_cpu_ms(self) -> float:
        return 1000 * self.store_cpu_seconds / self.commands if self.commands else float("nan")

    def add(self, other: Level) -> None:
        self.latencies.extend(other.latencies)
        self.failures.extend(other.failures)
        self.cpu_seconds += other.cpu_seconds
        self.store_cpu_seconds += other.store_cpu_seconds
        self.commands += other.commands
        self.in_ack += other.in_ack
        self.answered.extend(other.answered)
        self.round_cpu_ms.append(other.cpu_ms)


class Answers:
    """Counts the posts each server made to its commands' response_url on the Slack stand-in."""

    def __init__(self, api: FakeSlackApi) -> None:
        self.base = api.response_url_base
        self._counts: Counter[str] = Counter()
        self._arrived: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()
        api.subscribe(self._seen)

    def url_for(self, server: str, index: int) -> str:
        return f"{self.base}{server}/{index}"

    def _seen(self, call: Any) -> None:
        if call.method.startswith("response_url:"):
            server, _, index = call.method.removeprefix("response_url:/respond/").partition("/")
            with self._lock:
                self._counts[server] += 1
                self._arrived.setdefault((server, int(index or 0)), time.perf_counter())

    def arrived(self, server: str, index: int) -> float | None:
        with self._lock:
            return self._arrived.get((server, index))

    def count(self, server: str) -> int:
        with self._lock:
            return self._counts[server]

    def wait(self, server: str, at_least: int, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while self.count(server) < at_least:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True


def send_commands(
    server: Server,
    command: str,
    text: str,
    concurrency: int,
    count: int,
    answers: Answers | None = None,
) -> Level:
    """`count` signed commands, `concurrency` in flight at once; the clock runs per request."""
    local = threading.local()
    level = Level(concurrency)
    lock = threading.Lock()

    def one(index: int) -> None:
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = requests.Session()
        trigger = next(_TRIGGERS)
        body = command_body(
            command,
            text,
            user_id=USERS[index % len(USERS)],
            trigger_id=f"{trigger}.bench.trigger",
            response_url=answers.url_for(server.name, trigger) if answers else "",
        )
        headers = signed_headers(SIGNING_SECRET, body)
        started = time.perf_counter()
        try:
            response = http.post(
                f"{server.url}/slack/events", data=body, headers=headers, timeout=30
            )
            status = response.status_code
            answered = b'"blocks"' in response.content
        except requests.RequestException as exc:
            status, response, answered = -1, None, False
            problem = type(exc).__name__
        elapsed = time.perf_counter() - started
        with lock:
            level.latencies.append(elapsed)
            level.in_ack += answered
            if answered:
                level.answered.append(elapsed)
            else:
                level.waiting[trigger] = started
            if status != 200:
                detail = response.text[:120] if response is not None else problem
                level.failures.append(f"{status} {detail}")

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(count)))
    level.commands = count
    return level


def measured_round(
    server: Server,
    args: argparse.Namespace,
    concurrency: int,
    count: int,
    answers: Answers,
    answers_per_command: float,
    store: Callable[[], float],
) -> Level:
    """One round: latencies, and the server's CPU (and the store's, `store`) from before the
    first command until every answer not given in an ack has been posted."""
    before_posts = answers.count(server.name)
    before, store_before = server.cpu_seconds(), store()
    level = send_commands(server, args.command, args.text, concurrency, count, answers)
    expected = before_posts + round(answers_per_command * count) - level.in_ack
    if not answers.wait(server.name, expected):
        level.failures.append(f"{expected - answers.count(server.name)} answers never posted")
    for trigger, sent in level.waiting.items():
        at = answers.arrived(server.name, trigger)
        if at is not None:
            level.answered.append(at - sent)
    level.cpu_seconds = server.cpu_seconds() - before
    level.store_cpu_seconds = store() - store_before
    return level


def requests_for(concurrency: int, per_level: int) -> int:
    return max(per_level, concurrency * 10)


# --- the run ------------------------------------------------------------------------------
@dataclass
class StoreResult:
    db: str
    levels: dict[str, list[Level]]


def run_store(
    args: argparse.Namespace, db: str, api: FakeSlackApi, answers: Answers
) -> StoreResult:
    with (
        tempfile.TemporaryDirectory(prefix="roleup-bench-") as tmp,
        database(db, Path(tmp)) as database_url,
    ):
        workdir = Path(tmp)
        env = roleup_env(database_url, api.url)
        upgrade(env)
        seed_accounts(env, args.accounts)
        servers = start_pair(args, env, workdir, api)
        try:
            return StoreResult(db, measure(args, servers, answers, store_cpu(database_url)))
        finally:
            for server in servers.values():
                server.stop()


def warm_up(
    args: argparse.Namespace, servers: dict[str, Server], answers: Answers
) -> dict[str, float]:
    """First requests pay for imports and auth.test; also learn how many answers each app
    gives per command, in its ack or posted after it (1 for /accounts, 0 for the bare app)."""
    given = {}
    for name, server in servers.items():
        before = answers.count(name)
        level = send_commands(server, args.command, args.text, 5, WARMUP, answers)
        time.sleep(1.0 if name == "roleup" else 0)
        given[name] = (answers.count(name) - before + level.in_ack) / WARMUP
    return given


def measure(
    args: argparse.Namespace,
    servers: dict[str, Server],
    answers: Answers,
    store: Callable[[], float],
) -> dict[str, list[Level]]:
    given = warm_up(args, servers, answers)
    results: dict[str, list[Level]] = {name: [] for name in APPS}
    for concurrency in args.levels:
        count = requests_for(concurrency, args.requests)
        per_round = max(concurrency, count // ROUNDS)
        levels = {name: Level(concurrency) for name in results}
        # Alternate the three apps in rounds so load from elsewhere on a shared machine falls
        # on all alike.
        for _ in range(max(1, count // per_round)):
            for name in APPS:
                part = measured_round(
                    servers[name], args, concurrency, per_round, answers, given[name], store
                )
                levels[name].add(part)
        for name, level in levels.items():
            results[name].append(level)
    return results


def run(args: argparse.Namespace) -> int:
    api = FakeSlackApi().start()
    answers = Answers(api)
    stores = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    try:
        results = [run_store(args, db, api, answers) for db in stores]
    finally:
        api.stop()
    return report(args, results)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def report(args: argparse.Namespace, results: list[StoreResult]) -> int:
    print(
        f"`{args.command} {args.text}` against {args.accounts} accounts: gunicorn gthread "
        f"{args.workers} workers x {args.threads} threads, {os.cpu_count()} CPUs, loopback; "
        f"the apps alternating in rounds; load average (1/5/15 min) at the end {load_average()}"
    )
    ok = True
    for result in results:
        print(f"\n{result.db}")
        print(
            f"{'conc':>4} {'n':>5} | {'app':<8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
            f"{'fail':>4} {'in ack':>6} {'answer p99':>10} | {'CPU ms/cmd':>10} {'store':>6}"
        )
        for row in zip(*(result.levels[name] for name in APPS), strict=True):
            for level, name in zip(row, APPS, strict=True):
                print(
                    f"{level.concurrency:>4} {len(level.latencies):>5} | {name:<8} "
                    f"{level.p50 * 1000:>8.1f} {level.p99 * 1000:>8.1f} "
                    f"{level.max * 1000:>8.1f} {len(level.failures):>4} {level.in_ack:>6} "
                    f"{level.answer_p99 * 1000:>10.1f} | "
                    f"{level.cpu_ms:>10.2f} "
                    + (f"{level.store_cpu_ms:>6.2f}" if result.db == "postgresql" else f"{'-':>6}")
                )
            failures = [f for level in row for f in level.failures]
            if failures:
                ok = False
                print(f"  failures: {failures[:3]}")
    for floor in (SAME_MODE, BARE):  # the targets' floor (Bolt's defaults) printed last
        ok = _ratios(args, results, floor) and ok
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


def _ratios(args: argparse.Namespace, results: list[StoreResult], floor: str) -> bool:
    """RoleUp's ratios to `floor`'s figures; True unless a target (against BARE only) missed."""
    what = "bare, same mode" if floor == SAME_MODE else "bare, Bolt's defaults: the targets"
    print(f"\nratios, RoleUp ÷ {floor} ({what}) (p99 ack; CPU per command):")
    ok = True
    for result in results:
        for roleup, bare in zip(result.levels["roleup"], result.levels[floor], strict=True):
            p99 = roleup.p99 / bare.p99 if bare.p99 > 0 else float("inf")
            cpu = roleup.cpu_ms / bare.cpu_ms if bare.cpu_ms > 0 else float("inf")
            missed = []
            if floor == BARE:
                if roleup.p99 > args.target_p99 or p99 > args.target_ratio:
                    missed.append(f"p99 target <= {args.target_ratio}x and < {args.target_p99} s")
                if cpu > args.target_cpu:
                    missed.append(f"CPU target <= {args.target_cpu}x")
            ok = ok and not missed
            print(
                f"  {result.db:<10} c={roleup.concurrency:<3} p99 {p99:.2f}x  "
                f"CPU {roleup.cpu_ms:.2f} / {bare.cpu_ms:.2f} ms = {cpu:.2f}x"
                f"{_spread(roleup, bare)}" + (f"  MISSED: {'; '.join(missed)}" if missed else "")
            )
    return ok


def _spread(roleup: Level, bare: Level) -> str:
    """The CPU ratio of each alternated round, RoleUp's to the floor's run just before it: how
    far the machine's own noise moves the figure (on a shared or virtual machine, often more
    than a change being measured)."""
    rounds = [r / b for r, b in zip(roleup.round_cpu_ms, bare.round_cpu_ms, strict=True) if b > 0]
    if len(rounds) < 2:
        return ""
    return (
        f" (rounds {min(rounds):.2f}-{max(rounds):.2f}x, median {statistics.median(rounds):.2f}x)"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--command", default="/accounts", help="a slash command on main")
    parser.add_argument("--text", default=INTEGRATION)
    parser.add_argument("--accounts", type=int, default=500, help="accounts in `prod`")
    parser.add_argument("--workers", type=int, default=2, help="as `roleup serve` defaults")
    parser.add_argument("--threads", type=int, default=8, help="as `roleup serve` defaults")
    parser.add_argument(
        "--requests", type=int, default=200, help="requests per level (at least 10x concurrency)"
    )
    parser.add_argument(
        "--levels", type=int, nargs="+", default=list(LEVELS), help="concurrency levels"
    )
    parser.add_argument("--target-p99", type=float, default=1.0, help="seconds")
    parser.add_argument("--target-ratio", type=float, default=1.2, help="p99 ÷ the bare app's")
    parser.add_argument("--target-cpu", type=float, default=1.5, help="CPU ÷ the bare app's")
    parser.add_argument("--serve-bare", metavar="HOST:PORT", help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare, args.workers, args.threads, args.api_url)
        return 0
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
