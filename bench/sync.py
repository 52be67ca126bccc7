"""How long `roleup sync` takes as a whole process, next to a bare process doing only the fetch.

For each size in --users (half of the users inside the integration's path prefix, each in two of
--groups groups, groups and users with managed policies) this starts a moto server in its own
process (seeded in that process, straight into moto's backend, so seeding 20,000 users takes
seconds rather than 80,000 HTTP calls), then times whole processes from start to exit, alternating
in rounds:

* the floor: `python -c` importing boto3 and walking the paginated GetAccountAuthorizationDetails
  (users and groups), the one call any sync must make;
* the three-list floor: the same, walking the three lists a sync reads (GAAD, ListUsers with the
  prefix, ListPolicies) together on one client as RoleUp does, and nothing else. moto serves them
  from one process, one after another, where AWS serves them side by side, so on moto this floor
  is above GAAD's and RoleUp over it is what RoleUp itself adds; and
* `python -m bot sync` (the `roleup sync` command) into a SQLite store and, with --db both or
  postgresql, into a throwaway PostgreSQL cluster (tests/support/postgres.py), each store's
  integration synced once before the timed rounds, so they time the everyday re-sync.

Each process's peak RSS comes from the kernel (wait4's ru_maxrss of that child), and is also shown
over the RSS of a process that only imports (boto3 for the floor, RoleUp's modules for the sync);
the raw snapshot is the bytes of the IAM answers a sync reads (GAAD, ListUsers and ListPolicies
pages, XML as moto sends them), fetched once by a separate process. This orchestrator imports
nothing heavy, so its own memory cannot leak into a child's figure. The medians are compared
and the ratio at each size is printed last, with the load average (the machine is shared).
Exit status 1 if `roleup sync` takes more than --target times the floor at 5000 users or more.

    .venv/bin/python bench/sync.py                                  # 1k, 5k, 20k users; SQLite
    .venv/bin/python bench/sync.py --users 5000 --db both --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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
TARGET_FROM = 5000  # the size the target is set at; smaller runs are dominated by start-up

# The floor: what any sync must at least do, in a process of its own.
FLOOR = f"""
import boto3
iam = boto3.client("iam", region_name="us-east-1")
users = 0
for page in iam.get_paginator("get_account_authorization_details").paginate(
    Filter=["User", "Group"], PaginationConfig={{"PageSize": 1000}}
):
    users += sum(1 for u in page["UserDetailList"] if u["Path"].startswith({PREFIX!r}))
print(users)
"""

# The same-fetch floor: the three lists a sync reads (GAAD, ListUsers with the prefix,
# ListPolicies), in flight together on one client as RoleUp has them, and nothing else. On moto
# it carries what a single-process server adds by serving the three one after another, which
# AWS serves side by side; RoleUp over it is RoleUp's own cost.
FLOOR_LISTS = f"""
from concurrent.futures import ThreadPoolExecutor
import boto3
iam = boto3.client("iam", region_name="us-east-1")
def walk(operation, key, **kwargs):
    config = {{"PageSize": 1000}}
    pages = iam.get_paginator(operation).paginate(**kwargs, PaginationConfig=config)
    return sum(1 for page in pages for item in page[key] if item["Path"].startswith({PREFIX!r}))
with ThreadPoolExecutor(max_workers=3) as pool:
    gaad = pool.submit(walk, "get_account_authorization_details", "UserDetailList",
                       Filter=["User", "Group"])
    listed = pool.submit(walk, "list_users", "Users", PathPrefix={PREFIX!r})
    catalogue = pool.submit(walk, "list_policies", "Policies", Scope="All")
assert listed.result() == gaad.result(), (listed.result(), gaad.result())
catalogue.result()
print(gaad.result())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the moto server: `python bench/sync.py --serve-moto PORT --users N` ----------------------
def serve_moto(port: int, users: int, groups: int) -> None:
    """Seed moto's IAM backend directly, serve it on loopback, print "ready", run until killed."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    page_like_aws()
    iam = iam_backends[DEFAULT_ACCOUNT_ID]["global"]
    policies = [iam.create_policy("", "/", POLICY_DOC, f"bench-{i}", []).arn for i in range(groups)]
    for i in range(groups):
        iam.create_group(f"group-{i}")
        iam.attach_group_policy(policies[i], f"group-{i}")
    for n in range(users):
        name = f"user-{n:06d}"
        iam.create_user("us-east-1", name, PREFIX if n % 2 == 0 else OUTSIDE)
        iam.add_user_to_group(f"group-{n % groups}", name)
        iam.add_user_to_group(f"group-{(n + 1) % groups}", name)
        iam.attach_user_policy(policies[n % groups], name)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


AWS_MAX_ITEMS = 1000  # the most IAM puts in one page of these lists
AWS_DEFAULT_ITEMS = 100  # without MaxItems


def page_like_aws() -> None:
    """Make this moto process page GetAccountAuthorizationDetails and ListUsers as IAM does.

    moto answers both in one page whatever MaxItems says; 20,000 users in one GAAD answer took
    longer than RoleUp's read timeout, and no sync against AWS ever sees such a page. Here each
    answer holds at most MaxItems entries (users first, then groups, as IAM orders them) and a
    Marker to the rest. Only this bench's moto process is patched, never the product or tests."""
    from moto.core.responses import ActionResult
    from moto.iam.responses import IamResponse

    def page(response: IamResponse, entries: list[tuple[str, object]]) -> tuple[dict, bool, str]:
        start = int(response._get_param("Marker") or 0)
        size = min(int(response._get_param("MaxItems") or AWS_DEFAULT_ITEMS), AWS_MAX_ITEMS)
        lists: dict[str, list[object]] = {}
        for key, entry in entries[start : start + size]:
            lists.setdefault(key, []).append(entry)
        more = start + size < len(entries)
        return lists, more, str(start + size)

    def gaad(self: IamResponse) -> ActionResult:
        found = self.backend.get_account_authorization_details(self._get_param("Filter", []))
        entries = [
            (key, entry)
            for key, kind in (
                ("UserDetailList", "users"),
                ("GroupDetailList", "groups"),
                ("RoleDetailList", "roles"),
                ("Policies", "managed_policies"),
            )
            for entry in found[kind]
        ]
        lists, more, marker = page(self, entries)
        result: dict[str, object] = {
            key: lists.get(key, [])
            for key in ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies")
        }
        result["IsTruncated"] = more
        if more:
            result["Marker"] = marker
        return ActionResult(result)

    def list_users(self: IamResponse) -> ActionResult:
        users = self.backend.list_users(self._get_param("PathPrefix"), None, None)
        lists, more, marker = page(self, [("Users", user) for user in users])
        result: dict[str, object] = {"Users": lists.get("Users", []), "IsTruncated": more}
        if more:
            result["Marker"] = marker
        return ActionResult(result)

    IamResponse.get_account_authorization_details = gaad  # type: ignore[method-assign]
    IamResponse.list_users = list_users  # type: ignore[method-assign]


@contextlib.contextmanager
def moto_server(users: int, groups: int) -> Iterator[str]:
    port = free_port()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # for sigwait
    try:
        argv = [sys.executable, __file__, "--serve-moto", str(port), "--users", str(users)]
        process = subprocess.Popen(
            [*argv, "--groups", str(groups)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # werkzeug logs every request there
            text=True,
        )
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise SystemExit("the moto server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- the raw snapshot: `python bench/sync.py --raw-size URL` ----------------------------------
def raw_size(url: str) -> None:
    """Bytes of every answer a sync reads, as they come over the wire, printed as JSON."""
    import boto3

    iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1")
    sizes: dict[str, int] = {}

    def count(operation_model: object, response_dict: dict[str, object], **_: object) -> None:
        name = str(getattr(operation_model, "name", "?"))
        sizes[name] = sizes.get(name, 0) + len(response_dict["body"])  # type: ignore[arg-type]

    iam.meta.events.register("before-parse.iam.*", count)
    walks = (
        ("get_account_authorization_details", {"Filter": ["User", "Group"]}),
        ("list_users", {"PathPrefix": PREFIX}),
        ("list_policies", {"Scope": "All"}),
    )
    for operation, kwargs in walks:
        for _ in iam.get_paginator(operation).paginate(**kwargs):
            pass
    print(json.dumps(sizes))


# --- the store: `python bench/sync.py --setup-store DATABASE_URL` ---------------------------
def setup_store(database_url: str) -> None:
    """Migrate the store and add the integration, its key sealed with $ROLEUP_ENCRYPTION_KEYS."""
    from bot.services.aws import seal_key_pair
    from storage.crypto import SecretBox
    from storage.db import make_engine, make_sessionmaker
    from storage.migrate import upgrade
    from storage.models import Integration

    upgrade(database_url)
    engine = make_engine(database_url)
    box = SecretBox(os.environ["ROLEUP_ENCRYPTION_KEYS"].split(","))
    with make_sessionmaker(engine).begin() as session:
        session.add(
            Integration(
                name="bench",
                path_prefix=PREFIX,
                credentials_ciphertext=seal_key_pair(box, "bench", "bench"),
                created_by="bench",
            )
        )
    engine.dispose()


@contextlib.contextmanager
def store(kind: str, workdir: Path) -> Iterator[str]:
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


# --- timing whole processes ------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    peak_rss_mib: float
    out: str


@dataclass
class Series:
    label: str
    runs: list[Run] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def peak_rss_mib(self) -> float:
        return max(r.peak_rss_mib for r in self.runs)


def timed(argv: list[str], env: dict[str, str]) -> Run:
    """Wall time from start to exit, and the child's own peak RSS (wait4, not our rusage)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{argv[1:3]} failed ({process.returncode}):\n{err.read()[-2000:]}")
        return Run(seconds, usage.ru_maxrss / 1024, out.read().strip())


def child_env(url: str, database_url: str, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLACK_", "ROLEUP_"))}
    env.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # moto accepts any key
        AWS_DEFAULT_REGION="us-east-1",
        DATABASE_URL=database_url,
        ROLEUP_ENCRYPTION_KEYS=key,
    )
    return env


@dataclass
class Size:
    users: int
    raw_mib: float
    raw_detail: dict[str, int]
    floor: Series
    lists: Series
    roleup: dict[str, Series]
    first_sync: dict[str, Run]


def measure_size(args: argparse.Namespace, users: int, key: str) -> Size:
    python = sys.executable
    sync = [python, "-m", "bot", "sync"]
    started = time.perf_counter()
    with (
        moto_server(users, args.groups) as url,
        tempfile.TemporaryDirectory() as tmp,
        contextlib.ExitStack() as stack,
    ):
        print(
            f"{users} users: moto seeded and serving in {time.perf_counter() - started:.1f}s",
            flush=True,
        )
        floor_env = child_env(url, "", key)
        sizes = json.loads(timed([python, __file__, "--raw-size", url], floor_env).out)
        timed([python, "-c", FLOOR], floor_env)  # moto's own warm-up, untimed
        envs: dict[str, dict[str, str]] = {}
        first: dict[str, Run] = {}
        for kind in args.db:
            database_url = stack.enter_context(store(kind, Path(tmp)))
            envs[kind] = child_env(url, database_url, key)
            timed([python, __file__, "--setup-store", database_url], envs[kind])
            first[kind] = timed(sync, envs[kind])
        floor, lists = Series("floor"), Series("lists")
        roleup = {kind: Series(kind) for kind in args.db}
        for _ in range(args.rounds):
            for kind in args.db:
                floor.runs.append(timed([python, "-c", FLOOR], floor_env))
                lists.runs.append(timed([python, "-c", FLOOR_LISTS], floor_env))
                roleup[kind].runs.append(timed(sync, envs[kind]))
    expected = users // 2 + users % 2
    seen = {int(r.out) for r in [*floor.runs, *lists.runs]} | {
        _accounts(r.out) for s in roleup.values() for r in [*s.runs, first[s.label]]
    }
    if seen != {expected}:
        raise SystemExit(f"expected {expected} accounts in the prefix, the runs saw {seen}")
    return Size(users, sum(sizes.values()) / 2**20, sizes, floor, lists, roleup, first)


def _accounts(summary: str) -> int:
    """The account count of `roleup sync`'s summary line ("bench: 2500 accounts, ...")."""
    return int(summary.split(": ", 1)[1].split()[0])


# --- the report ------------------------------------------------------------------------------
# What each process holds before it fetches anything: the interpreter and its imports.
FLOOR_IMPORTS = "import boto3; boto3.client('iam', region_name='us-east-1')"
ROLEUP_IMPORTS = "import bot.cli, bot.cli_sync, bot.app, storage.migrate, bot.services.sync"


def baselines(key: str) -> tuple[float, float]:
    env = child_env("http://127.0.0.1:9", "sqlite://", key)
    floor = min(timed([sys.executable, "-c", FLOOR_IMPORTS], env).peak_rss_mib for _ in range(3))
    roleup = min(timed([sys.executable, "-c", ROLEUP_IMPORTS], env).peak_rss_mib for _ in range(3))
    return floor, roleup


def report(
    sizes: list[Size], load: tuple[float, float], target: float, base: tuple[float, float]
) -> int:
    print()
    print(
        f"{'users':>6} {'store':<10} {'raw MiB':>8} {'first sync s':>12} {'floor s':>8} "
        f"{'3 lists s':>9} {'sync s':>7} {'floor RSS':>10} {'sync RSS':>9} {'floor +':>8} "
        f"{'sync +':>7}"
    )
    for size in sizes:
        for kind, series in size.roleup.items():
            print(
                f"{size.users:6d} {kind:<10} {size.raw_mib:8.1f} "
                f"{size.first_sync[kind].seconds:12.2f} {size.floor.seconds:8.2f} "
                f"{size.lists.seconds:9.2f} {series.seconds:7.2f} {size.floor.peak_rss_mib:8.0f}Mi "
                f"{series.peak_rss_mib:7.0f}Mi {size.floor.peak_rss_mib - base[0]:6.0f}Mi "
                f"{series.peak_rss_mib - base[1]:5.0f}Mi"
            )
    print(
        f"'+' is the peak over the process's imports alone ({base[0]:.0f} MiB for boto3, "
        f"{base[1]:.0f} MiB for RoleUp's); raw is the bytes of IAM's answers a sync reads"
    )
    print(f"load average during the run: {load[0]:.2f} at the start, {load[1]:.2f} at the end")
    print(f"on {os.cpu_count()} cores; seconds are medians, RSS the highest of the runs")
    print("floor: GAAD alone; 3 lists: GAAD, ListUsers and ListPolicies together, as a sync reads")
    ok = True
    for size in sizes:
        ratios, over_lists = [], []
        for kind, series in size.roleup.items():
            ratio = series.seconds / size.floor.seconds
            ratios.append(f"{ratio:.2f}x ({kind})")
            over_lists.append(f"{series.seconds / size.lists.seconds:.2f}x ({kind})")
            if size.users >= TARGET_FROM and ratio > target:
                ok = False
        print(
            f"{size.users} users, roleup sync / floor: {', '.join(ratios)}; "
            f"/ 3 lists: {', '.join(over_lists)}"
        )
    print(f"target <= {target}x from {TARGET_FROM} users: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each")
    parser.add_argument("--target", type=float, default=1.2)
    parser.add_argument("--serve-moto", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--raw-size", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--setup-store", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.db = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_moto:
        serve_moto(args.serve_moto, args.users[0], args.groups)
        return 0
    if args.raw_size:
        raw_size(args.raw_size)
        return 0
    if args.setup_store:
        setup_store(args.setup_store)
        return 0
    # A terminated run still stops its servers (the `finally`s run on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    key = _fernet_key()
    start_load = os.getloadavg()[0]
    base = baselines(key)
    sizes = []
    for users in args.users:
        sizes.append(measure_size(args, users, key))
        done = sizes[-1]
        told = ", ".join(f"{s.label} {s.seconds:.2f}s" for s in done.roleup.values())
        print(
            f"  floor {done.floor.seconds:.2f}s, 3 lists {done.lists.seconds:.2f}s, "
            f"roleup sync {told}; "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    return report(sizes, (start_load, os.getloadavg()[0]), args.target, base)


def _fernet_key() -> str:
    # A Fernet key without importing cryptography here (this process stays small: see above).
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).decode()


if __name__ == "__main__":
    raise SystemExit(main())
