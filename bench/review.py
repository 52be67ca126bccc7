"""How long starting an access review takes, next to the floor, against a moto server.

In one run: start a moto server (its own process), seed it with --users IAM users under
/bench/ (half under /bench/a/; every second one with a console password, every third with an
access key), add two integrations to a SQLite store and sync them (not measured): `all`
(prefix /bench/, every user) and `half` (prefix /bench/a/). Then, alternating in rounds:

(a) the floor: GenerateCredentialReport until COMPLETE, GetCredentialReport and a csv parse of
    every row with boto3 alone: what any review must at least do to have the evidence;
(b) RoleUp's campaign start (`bot.services.review_start.start_campaign`) for `all`: the same
    report, then every account of the store frozen with its flags, in one transaction;
(c) the same for `half`: half the accounts, the same report.

Each campaign is closed after its round so the next round starts one again. AWS calls are
counted with a botocore `before-call` hook. A report is generated once before the rounds:
AWS, like moto, answers COMPLETE at once while a report is under four hours old.
Targets: (b) makes one report round trip (GenerateCredentialReport + GetCredentialReport, no
call per user); (b)/(c) time at most 2.5x for twice the accounts (linear, not worse); (b)/(a)
printed last. Exit status 1 if a target is missed.

    .venv/bin/python bench/review.py                 # 5000 users
    .venv/bin/python bench/review.py --users 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `python bench/review.py`
    sys.path.insert(0, str(ROOT))

from bench.sync import TEST_KEY, iam_client, moto_server  # noqa: E402

PREFIX = "/bench/"
HALF = "/bench/a/"


class Calls:
    """The AWS operations a run made, by name (a botocore `before-call` hook)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-call.*.*", self.record)
        return client

    def record(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)


def seed(url: str, users: int) -> None:
    iam = iam_client(url)

    def one(n: int) -> None:
        name = f"user-{n:06d}"
        iam.create_user(UserName=name, Path=HALF if n % 2 == 0 else "/bench/b/")
        if n % 2 == 0:
            iam.create_login_profile(UserName=name, Password=f"Bench-{n}-Pw-2024!")
        if n % 3 == 0:
            iam.create_access_key(UserName=name)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(users)))


def floor(url: str, counter: Calls) -> int:
    """(a) The credential report with boto3 alone, every row parsed."""
    iam = counter.attach(iam_client(url))
    while iam.generate_credential_report()["State"] != "COMPLETE":
        time.sleep(1)
    content = iam.get_credential_report()["Content"].decode()
    rows = sum(1 for row in csv.DictReader(io.StringIO(content)) if row["user"] != "<root_account>")
    return rows


class Store:
    """A SQLite store with the two integrations synced, and a core whose clients count."""

    def __init__(self, url: str, database_url: str) -> None:
        from bot.services.aws import AwsClients
        from bot.services.container import Core
        from bot.settings import Settings
        from storage.crypto import SecretBox
        from storage.db import make_engine, make_sessionmaker

        self.counter = Calls()
        engine = make_engine(database_url)
        aws = AwsClients(endpoint_url=url)
        original = aws._client

        def counted(*args: Any, **kwargs: Any) -> Any:
            client = original(*args, **kwargs)
            # Clients may be reused across runs: count into whichever run is measuring now.
            client.meta.events.register(
                "before-call.*.*", lambda **kw: self.counter.record(**kw), unique_id="bench"
            )
            return client

        aws._client = counted  # type: ignore[method-assign]
        self.core = Core(
            settings=Settings(database_url=database_url, encryption_keys=(TEST_KEY,)),
            engine=engine,
            sessions=make_sessionmaker(engine),
            box=SecretBox([TEST_KEY]),
            aws=aws,
        )
        self.ids = {"all": self._add("all", PREFIX), "half": self._add("half", HALF)}

    def _add(self, name: str, prefix: str) -> int:
        from bot.services.aws import seal_key_pair
        from bot.services.sync import sync_integration
        from storage.models import Integration

        with self.core.sessions.begin() as session:
            row = Integration(
                name=name,
                path_prefix=prefix,
                managers=["UBENCH"],
                credentials_ciphertext=seal_key_pair(self.core.require_box(), "bench", "bench"),
                created_by="bench",
            )
            session.add(row)
            session.flush()
            integration_id = int(row.id)
        sync_integration(self.core, integration_id, actor="bench")
        return integration_id

    def start(self, which: str, counter: Calls) -> int:
        """(b) and (c): one campaign start, closed afterwards (outside the measured time)."""
        from bot.services.review_start import start_campaign

        self.counter = counter
        started = start_campaign(self.core, integration_id=self.ids[which], actor="UBENCH")
        self.last = started.campaign_id
        return started.items

    def close_last(self) -> None:
        from bot.services.review_jobs import close

        close(self.core, self.last, actor="bench")


def measure(run: Callable[[Calls], int]) -> dict[str, Any]:
    counter = Calls()
    started = time.perf_counter()
    accounts = run(counter)
    return {"seconds": time.perf_counter() - started, "calls": counter.names, "accounts": accounts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (a), (b), (c); best")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

    from storage.migrate import upgrade

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with moto_server() as url, tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(database_url)
        began = time.perf_counter()
        seed(url, args.users)
        store = Store(url, database_url)
        floor(url, Calls())  # the report exists from now on, as on a live account
        print(f"seeded and synced {args.users} users in {time.perf_counter() - began:.1f}s")
        results: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "c": []}
        for _ in range(args.rounds):
            results["a"].append(measure(lambda c: floor(url, c)))
            for phase, which in (("b", "all"), ("c", "half")):
                results[phase].append(measure(lambda c, w=which: store.start(w, c)))
                store.close_last()
    return report({phase: min(runs, key=lambda r: r["seconds"]) for phase, runs in results.items()})


def report(best: dict[str, dict[str, Any]]) -> int:
    labels = {
        "a": "(a) floor: report fetch + csv parse",
        "b": "(b) RoleUp campaign start, all",
        "c": "(c) RoleUp campaign start, half",
    }
    print(f"{'':38} {'accounts':>8} {'seconds':>8} {'ms/account':>10}  AWS calls")
    for phase, label in labels.items():
        r = best[phase]
        per = 1000 * r["seconds"] / max(1, r["accounts"])
        calls = ", ".join(f"{n} x{r['calls'].count(n)}" for n in dict.fromkeys(r["calls"]))
        print(f"{label:38} {r['accounts']:8d} {r['seconds']:8.2f} {per:10.3f}  {calls}")
    one_trip = sorted(best["b"]["calls"]) == ["GenerateCredentialReport", "GetCredentialReport"]
    linear = best["b"]["seconds"] / best["c"]["seconds"]
    print(f"(b) one credential report round trip, no call per user: {'yes' if one_trip else 'NO'}")
    print(f"(b)/(c) time for twice the accounts: {linear:.2f}x (target <= 2.5x)")
    ratio = best["b"]["seconds"] / best["a"]["seconds"]
    print(f"(b)/(a) time: {ratio:.2f}x the floor")
    return 0 if one_trip and linear <= 2.5 else 1


if __name__ == "__main__":
    sys.exit(main())
