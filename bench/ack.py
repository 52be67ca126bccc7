"""How fast RoleUp acknowledges a slash command, next to a Bolt app that only acks.

Slack gives an app 3 seconds to acknowledge a command. This benchmark starts, in one run and on
loopback only:

* `python -m bot serve` exactly as the Procfile runs it (gunicorn, gthread workers) with a real
  store (SQLite or a throwaway PostgreSQL) and the recording Slack Web API stand-in, and
* a bare Bolt app behind the same Flask adapter and the same gunicorn options (worker class,
  workers, threads) whose only listener acks,

then sends really signed slash commands to each at concurrency 1, 10 and 50 (a bounded number of
requests per level) and prints p50, p99 and max per level and the ratio of RoleUp's to the bare
app's. It exits 1 if a request failed or a target was missed (p99 under --target-p99 seconds and
within --target-ratio of the bare app's p99).

    .venv/bin/python bench/ack.py                      # SQLite, /roleup help
    .venv/bin/python bench/ack.py --db postgresql --command /accounts --text ""
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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


# --- the bare app: runs in its own process, `python bench/ack.py --serve-bare HOST:PORT` ------
def serve_bare(bind: str, workers: int, threads: int, api_url: str) -> None:
    """A Bolt app whose one listener acks, under the gunicorn options `roleup serve` uses."""
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
            return _bare_flask(api_url)

    BareServer().run()


def _bare_flask(api_url: str) -> Any:
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
        # The same listener pool as bot.app.create_app, so only the listeners differ.
        listener_executor=ThreadPoolExecutor(max_workers=16),
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
    return os.environ.get("BENCH_COMMAND", "/roleup")


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


def roleup_env(database_url: str, api_url: str) -> dict[str, str]:
    from storage.crypto import generate_key

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLACK_", "ROLEUP_"))}
    env.update(
        DATABASE_URL=database_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=api_url,
        ROLEUP_ENCRYPTION_KEYS=generate_key(),
        ROLEUP_ADMINS="UBENCH",
        # No AWS is reachable from here: an endpoint on loopback that nothing listens on.
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # a placeholder: nothing answers there
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONUNBUFFERED="1",
    )
    return env


# --- load ---------------------------------------------------------------------------------
@dataclass
class Level:
    concurrency: int
    latencies: list[float]
    failures: list[str]

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
    def max(self) -> float:
        return max(self.latencies, default=float("nan"))


def send_commands(url: str, command: str, text: str, concurrency: int, count: int) -> Level:
    """`count` signed commands, `concurrency` in flight at once; the clock runs per request."""
    local = threading.local()
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = requests.Session()
        body = command_body(
            command,
            text,
            user_id=f"UBENCH{index % 7}",
            trigger_id=f"{index}.bench.trigger",
            response_url=f"{url}/nowhere",
        )
        headers = signed_headers(SIGNING_SECRET, body)
        started = time.perf_counter()
        try:
            response = http.post(f"{url}/slack/events", data=body, headers=headers, timeout=30)
            status = response.status_code
        except requests.RequestException as exc:
            status, response = -1, None
            problem = type(exc).__name__
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            if status != 200:
                detail = response.text[:120] if response is not None else problem
                failures.append(f"{status} {detail}")

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(count)))
    return Level(concurrency, latencies, failures)


def requests_for(concurrency: int, per_level: int) -> int:
    return max(per_level, concurrency * 10)


# --- the run ------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    api = FakeSlackApi().start()
    servers: list[Server] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="roleup-bench-") as tmp,
            database(args.db, Path(tmp)) as database_url,
        ):
            workdir = Path(tmp)
            env = roleup_env(database_url, api.url)
            subprocess.run(
                [sys.executable, "-m", "bot", "db", "upgrade"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
            roleup_port, bare_port = free_port(), free_port()
            roleup_argv = [sys.executable, "-m", "bot", "serve"]  # the Procfile's `roleup serve`
            shared = ["--workers", str(args.workers), "--threads", str(args.threads)]
            servers.append(
                start_server(
                    "roleup",
                    [*roleup_argv, "--bind", f"127.0.0.1:{roleup_port}", *shared],
                    env,
                    roleup_port,
                    workdir,
                )
            )
            bare_env = {**env, "BENCH_COMMAND": args.command}
            servers.append(
                start_server(
                    "bare",
                    [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "--serve-bare",
                        f"127.0.0.1:{bare_port}",
                        "--api-url",
                        api.url,
                        *shared,
                    ],
                    bare_env,
                    bare_port,
                    workdir,
                )
            )
            return measure(args, {s.name: s for s in servers}, workdir)
    finally:
        for server in servers:
            server.stop()
        api.stop()


def measure(args: argparse.Namespace, servers: dict[str, Server], workdir: Path) -> int:
    for server in servers.values():  # first requests pay for imports and auth.test
        send_commands(server.url, args.command, args.text, 5, WARMUP)
    results: dict[str, list[Level]] = {"roleup": [], "bare": []}
    for concurrency in args.levels:
        count = requests_for(concurrency, args.requests)
        per_round = max(concurrency, count // ROUNDS)
        levels = {name: Level(concurrency, [], []) for name in results}
        # Alternate the two apps in rounds so load from elsewhere on a shared machine falls
        # on both alike.
        for _ in range(max(1, count // per_round)):
            for name in ("bare", "roleup"):
                part = send_commands(
                    servers[name].url, args.command, args.text, concurrency, per_round
                )
                levels[name].latencies.extend(part.latencies)
                levels[name].failures.extend(part.failures)
        for name, level in levels.items():
            results[name].append(level)
    return report(args, results)


def report(args: argparse.Namespace, results: dict[str, list[Level]]) -> int:
    cpus = os.cpu_count()
    print(
        f"ack latency of `{args.command} {args.text}`: {args.db} store, gunicorn gthread "
        f"{args.workers} workers x {args.threads} threads, {cpus} CPUs, loopback"
    )
    header = (
        f"{'conc':>4} {'n':>5} | {'app':<6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'fail':>4}"
    )
    print(header + " | p99 ratio")
    ok = True
    for roleup, bare in zip(results["roleup"], results["bare"], strict=True):
        ratio = roleup.p99 / bare.p99 if bare.p99 > 0 else float("inf")
        for level, name in ((bare, "bare"), (roleup, "roleup")):
            line = (
                f"{level.concurrency:>4} {len(level.latencies):>5} | {name:<6} "
                f"{level.p50 * 1000:>8.1f} {level.p99 * 1000:>8.1f} {level.max * 1000:>8.1f} "
                f"{len(level.failures):>4}"
            )
            print(line + (f" | {ratio:.2f}x" if name == "roleup" else " |"))
        if roleup.failures or bare.failures:
            ok = False
            print(f"  failures: {(roleup.failures + bare.failures)[:3]}")
        if roleup.p99 > args.target_p99 or ratio > args.target_ratio:
            ok = False
            print(
                f"  target missed at concurrency {roleup.concurrency}: p99 "
                f"{roleup.p99:.3f} s (target < {args.target_p99} s), {ratio:.2f}x the bare app "
                f"(target <= {args.target_ratio}x)"
            )
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--command", default="/roleup", help="a slash command on main")
    parser.add_argument("--text", default="help")
    parser.add_argument("--workers", type=int, default=2, help="as `roleup serve` defaults")
    parser.add_argument("--threads", type=int, default=8, help="as `roleup serve` defaults")
    parser.add_argument(
        "--requests", type=int, default=200, help="requests per level (at least 10x concurrency)"
    )
    parser.add_argument(
        "--levels", type=int, nargs="+", default=list(LEVELS), help="concurrency levels"
    )
    parser.add_argument("--target-p99", type=float, default=1.0, help="seconds")
    parser.add_argument("--target-ratio", type=float, default=1.5)
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
