"""How RoleUp's sync compares with the floor and with the naive way, against a moto server.

In one run: start a moto server (its own process), seed it with --users IAM users (half inside
the integration's path prefix, each in two of --groups groups, groups and users with managed
policies), then measure, each in a fresh process so peak RSS is its own:

(a) the floor: a bare paginated GetAccountAuthorizationDetails fetch with boto3;
(b) this app's full sync (`bot.services.sync.sync_integration`) into a SQLite store;
(c) the naive way: ListUsers, then ListGroupsForUser and ListAttachedUserPolicies per user.

For each (best of --repeat runs): seconds, AWS API calls (counted with a botocore `before-call`
event hook) and peak RSS, plus the RSS growth over the process's baseline; then the ratios
(b)/(a) time and (c)/(b) calls.
Targets: (b) within 1.5x of (a) in time, at least 10x fewer API calls than (c). Exit status 1 if
a target is missed.

    .venv/bin/python bench/sync.py                 # 5000 users
    .venv/bin/python bench/sync.py --users 20000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `python bench/sync.py`
    sys.path.insert(0, str(ROOT))

PREFIX = "/bench/in/"
OUTSIDE = "/bench/out/"
POLICY_DOC = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
)
TEST_KEY = "kFJ0b0l8q3Yv8mJ8o2cS9h0m1x2Vf3b4n5M6k7L8p9Q="


# --- the moto server -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    import requests

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/moto-api/", timeout=2).ok:
                    break
            time.sleep(0.1)
        else:
            raise SystemExit("the moto server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def iam_client(url: str) -> Any:
    import boto3

    return boto3.client(
        "iam",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # moto accepts any key
    )


def seed(url: str, users: int, groups: int) -> None:
    iam = iam_client(url)
    policies = [
        iam.create_policy(PolicyName=f"bench-{i}", PolicyDocument=POLICY_DOC)["Policy"]["Arn"]
        for i in range(groups)
    ]
    for i in range(groups):
        iam.create_group(GroupName=f"group-{i}")
        iam.attach_group_policy(GroupName=f"group-{i}", PolicyArn=policies[i])

    def one(n: int) -> None:
        name = f"user-{n:06d}"
        iam.create_user(UserName=name, Path=PREFIX if n % 2 == 0 else OUTSIDE)
        iam.add_user_to_group(UserName=name, GroupName=f"group-{n % groups}")
        iam.add_user_to_group(UserName=name, GroupName=f"group-{(n + 1) % groups}")
        iam.attach_user_policy(UserName=name, PolicyArn=policies[n % groups])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(users)))


# --- measuring, inside each phase's own process ----------------------------------------------
class CallCounter:
    def __init__(self) -> None:
        self.calls = 0

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-call.*.*", self._count)
        return client

    def _count(self, **_: Any) -> None:
        self.calls += 1


def memory_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process. Not ru_maxrss: Linux carries that over
    from the parent across fork and exec, so a child would report the orchestrator's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> None:
    # "5" resets the peak RSS to the current RSS (Linux >= 4.0).
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def measure(run: Callable[[CallCounter], int]) -> dict[str, Any]:
    counter = CallCounter()
    reset_peak()
    baseline = memory_mib("VmRSS")
    started = time.perf_counter()
    accounts = run(counter)
    seconds = time.perf_counter() - started
    peak = memory_mib("VmHWM")
    return {
        "seconds": seconds,
        "calls": counter.calls,
        "peak_rss_mib": peak,
        "rss_growth_mib": peak - baseline,
        "accounts": accounts,
    }


def floor(url: str, counter: CallCounter) -> int:
    """(a) A bare paginated GAAD fetch: what any sync must at least do."""
    iam = counter.attach(iam_client(url))
    users = 0
    paginator = iam.get_paginator("get_account_authorization_details")
    for page in paginator.paginate(Filter=["User", "Group"]):
        users += sum(1 for u in page["UserDetailList"] if u["Path"].startswith(PREFIX))
    return users


def app_sync(url: str, counter: CallCounter, database_url: str) -> int:
    """(b) RoleUp's sync, store writes included."""
    from bot.services.aws import AwsClients, seal_key_pair
    from bot.services.container import Core
    from bot.services.sync import sync_integration
    from bot.settings import Settings
    from storage.crypto import SecretBox
    from storage.db import make_engine, make_sessionmaker
    from storage.models import Integration

    engine = make_engine(database_url)
    box = SecretBox([TEST_KEY])
    aws = AwsClients(endpoint_url=url)
    original = aws._client
    aws._client = lambda *a, **k: counter.attach(original(*a, **k))  # type: ignore[method-assign]
    core = Core(
        settings=Settings(database_url=database_url, encryption_keys=(TEST_KEY,)),
        engine=engine,
        sessions=make_sessionmaker(engine),
        box=box,
        aws=aws,
    )
    with core.sessions.begin() as session:
        integration = Integration(
            name=f"bench-{os.getpid()}",  # each repeat is a first sync of its own integration
            path_prefix=PREFIX,
            credentials_ciphertext=seal_key_pair(box, "bench", "bench"),
            created_by="bench",
        )
        session.add(integration)
        session.flush()
        integration_id = integration.id
    report = sync_integration(core, integration_id, actor="bench")
    engine.dispose()
    return report.accounts


def naive(url: str, counter: CallCounter) -> int:
    """(c) One ListUsers walk, then two calls per user."""
    iam = counter.attach(iam_client(url))
    snapshot: dict[str, tuple[list[str], list[str]]] = {}
    for page in iam.get_paginator("list_users").paginate(PathPrefix=PREFIX):
        for user in page["Users"]:
            name = user["UserName"]
            groups = [
                g["GroupName"]
                for p in iam.get_paginator("list_groups_for_user").paginate(UserName=name)
                for g in p["Groups"]
            ]
            policies = [
                a["PolicyArn"]
                for p in iam.get_paginator("list_attached_user_policies").paginate(UserName=name)
                for a in p["AttachedPolicies"]
            ]
            snapshot[name] = (groups, policies)
    return len(snapshot)


def run_phase(phase: str, url: str, database_url: str) -> None:
    runs: dict[str, Callable[[CallCounter], int]] = {
        "a": lambda c: floor(url, c),
        "b": lambda c: app_sync(url, c, database_url),
        "c": lambda c: naive(url, c),
    }
    # Imports happen before the baseline: a running bot has them loaded already.
    import boto3  # noqa: F401

    if phase == "b":
        import bot.services.sync  # noqa: F401
    print(json.dumps(measure(runs[phase])))


# --- the orchestrator ------------------------------------------------------------------------
def phase_in_subprocess(phase: str, url: str, database_url: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--endpoint", url, "--db", database_url],
        check=False,
        capture_output=True,
        text=True,
        env=dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench"),
    )
    if out.returncode != 0:
        raise SystemExit(f"phase ({phase}) failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2, help="runs per phase; the best counts")
    parser.add_argument("--phase", choices=["a", "b", "c"], help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        run_phase(args.phase, args.endpoint, args.db)
        return 0

    from storage.migrate import upgrade

    # A terminated run still stops its moto server (the `finally` below runs on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with moto_server() as url, tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(database_url)
        started = time.perf_counter()
        seed(url, args.users, args.groups)
        print(
            f"seeded {args.users} users ({args.users // 2 + args.users % 2} inside {PREFIX}), "
            f"{args.groups} groups in {time.perf_counter() - started:.1f}s"
        )
        # moto's first answer of a kind is slower (its own warm-up): keep that out of (a).
        iam_client(url).get_account_authorization_details(Filter=["User", "Group"])
        results = {
            phase: best_of(args.repeat, lambda p=phase: phase_in_subprocess(p, url, database_url))
            for phase in "abc"
        }
    return report(results)


def best_of(times: int, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The fastest of `times` runs (the usual way to see through a busy machine's noise)."""
    runs = [run() for _ in range(times)]
    best = min(runs, key=lambda r: float(r["seconds"]))
    best["peak_rss_mib"] = max(float(r["peak_rss_mib"]) for r in runs)
    best["rss_growth_mib"] = max(float(r["rss_growth_mib"]) for r in runs)
    return best


def report(results: dict[str, dict[str, Any]]) -> int:
    labels = {
        "a": "(a) floor: bare GAAD fetch",
        "b": "(b) RoleUp sync into the store",
        "c": "(c) naive: ListUsers + 2 calls/user",
    }
    print(f"{'':38} {'seconds':>8} {'API calls':>10} {'peak RSS':>10} {'RSS growth':>11}")
    for phase, label in labels.items():
        r = results[phase]
        print(
            f"{label:38} {r['seconds']:8.2f} {r['calls']:10d} "
            f"{r['peak_rss_mib']:8.1f}Mi {r['rss_growth_mib']:9.1f}Mi"
        )
    time_ratio = results["b"]["seconds"] / results["a"]["seconds"]
    call_ratio = results["c"]["calls"] / max(1, results["b"]["calls"])
    print(f"(b)/(a) time: {time_ratio:.2f}x (target <= 1.5x)")
    print(f"(c)/(b) API calls: {call_ratio:.0f}x fewer calls for (b) (target >= 10x)")
    accounts = {r["accounts"] for r in results.values()}
    if len(accounts) != 1:
        print(f"the three runs saw different numbers of accounts: {accounts}")
        return 1
    return 0 if time_ratio <= 1.5 and call_ratio >= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
