"""How fast an approved offboarding cuts access and removes the user, next to a sequential script.

In one run, on loopback only: a moto server (its own process, with the IAM calls moto 5 lacks
filled in as for the demo), a timing proxy in front of it (every AWS call's arrival and answer,
by action and user), `python -m bot serve` exactly as the Procfile runs it over a real store
(SQLite or a throwaway PostgreSQL) with the Slack Web API stand-in, and --users pairs of IAM
users, each with a console password, two access keys, a signing certificate, a virtual MFA
device, two groups and two attached managed policies. RoleUp's users are synced into the store
and each gets an offboarding request by a really signed `/offboard` (not measured).

Then, per pair, alternating which goes first:

* RoleUp: a really signed Approve click (block_actions) on the request's message; the clock
  starts as the click is sent. Measured on the proxy: (a) the last access-cutting call answered
  (the deny-all put, the login profile deleted, every key deactivated) and (b) AWS confirming
  the user is gone (the GetUser answered NoSuchEntity after DeleteUser); beside them where the
  time goes: the ack, the first AWS call, the first cut sent, Slack's "Done".
* The floor: a bare boto3 script (its client built before the clock starts) making the same
  calls one after the other, through the same proxy: the three cuts (PutUserPolicy,
  DeleteLoginProfile, ListAccessKeys and UpdateAccessKey per key), then the full cleanup
  (keys, certificates, SSH keys, service-specific credentials, MFA, inline and attached
  policies, groups), DeleteUser and a GetUser that answers NoSuchEntity.

Medians are printed with the load average, the ratios last. Targets: (a) within 1.0x the
floor's three cuts, (b) within 1.0x the floor's full cleanup. Exit status 1 if an offboarding
failed or a target was missed. One warm-up pair (the server's first click pays for imports and
first connections) is run first and shown, not counted. On loopback an AWS call costs only CPU,
which calls sent together cannot share on a small machine; --aws-latency adds a round trip to
every call at the proxy (a sleep, no CPU), as a network to AWS would.

    .venv/bin/python bench/revoke.py                   # SQLite, 20 users
    .venv/bin/python bench/revoke.py --db postgresql
    .venv/bin/python bench/revoke.py --aws-latency 50  # every AWS call 50 ms longer
    .venv/bin/python bench/revoke.py --trace           # and the server's own phases
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `python bench/revoke.py`
    sys.path.insert(0, str(ROOT))

from bench.ack import (  # noqa: E402
    SIGNING_SECRET,
    Server,
    database,
    free_port,
    roleup_env,
    start_server,
)
from tests.support.aws_wire import AwsWire  # noqa: E402
from tests.support.certificates import self_signed  # noqa: E402
from tests.support.signing import command_body, payload_body, signed_headers  # noqa: E402
from tests.support.slack_api import Call, FakeSlackApi  # noqa: E402

ROLEUP_PATH = "/bench/"  # the integration's prefix: RoleUp's users
FLOOR_PATH = "/floor/"  # outside it: the floor's users, which RoleUp never sees
GROUPS = ("bench-readers", "bench-writers")
POLICIES = ("bench-read", "bench-write")
ACCOUNT = "123456789012"  # moto's
MANAGER, APPROVER, CHANNEL = "UMANAGER", "UAPPROVER", "CAPPROVALS"
DENY_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
)
ALLOW_S3 = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
)
CUTS = frozenset({"PutUserPolicy", "AttachUserPolicy", "DeleteLoginProfile", "UpdateAccessKey"})
PATIENCE = 120.0  # seconds to wait for one offboarding on a busy machine (a bound, not a figure)


# --- the moto server: its own process, `python bench/revoke.py --serve-moto PORT` ----------
def serve_moto(port: int) -> None:
    from moto.server import ThreadedMotoServer

    from bot.demo.moto_gaps import fill_moto_gaps

    fill_moto_gaps()  # ListServiceSpecificCredentials answers "none", as AWS does
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # so sigwait, not the default, takes them
    server.start()
    signal.sigwait(stop)
    server.stop()


@contextlib.contextmanager
def moto_server(logs: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-moto", str(port)],
        cwd=ROOT,
        stdout=(logs / "moto.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise SystemExit(f"the moto server exited:\n{(logs / 'moto.log').read_text()}")
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


# --- the timing proxy ----------------------------------------------------------------------
@dataclass(frozen=True)
class Hit:
    """One AWS call as the proxy saw it: when it arrived and when moto's answer was back."""

    action: str
    user: str
    arrived: float
    answered: float
    status: int


class TimedWire(AwsWire):
    """tests/support/aws_wire.py's recording proxy, also noting each call's arrival and answer
    on the monotonic clock (one clock for every process on the machine)."""

    def __init__(self, upstream: str, latency: float = 0.0) -> None:
        super().__init__(upstream)
        self.latency = latency
        self.hits: list[Hit] = []

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        arrived = time.monotonic()
        if self.latency:
            time.sleep(self.latency)  # a network's round trip: waits, holds no CPU
        # Read the body here and hand the proxy a fresh stream of it: one read, two readers.
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        status: list[int] = []

        def noting(line: str, headers: Any, *rest: Any) -> Any:
            status.append(int(line.split()[0]))
            return start_response(line, headers, *rest)

        answer = super()._app(environ, noting)
        form = parse_qs(body.decode("utf-8", "replace"))
        hit = Hit(
            action=form.get("Action", [""])[0],
            user=form.get("UserName", [""])[0],
            arrived=arrived,
            answered=time.monotonic(),
            status=status[0] if status else 0,
        )
        with self._lock:
            self.hits.append(hit)
        return answer

    def of_user(self, user: str, since: float) -> list[Hit]:
        """The calls about `user` that arrived from `since` on, in order."""
        with self._lock:
            return sorted(
                (h for h in self.hits if h.user == user and h.arrived >= since),
                key=lambda h: h.arrived,
            )


# --- AWS: the users ------------------------------------------------------------------------
def iam_client(url: str) -> Any:
    import boto3

    return boto3.client(
        "iam",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # moto accepts any key
    )


def certificate(name: str) -> str:
    """A self-signed X.509 certificate in PEM (moto parses what it is given)."""
    from cryptography.hazmat.primitives import serialization

    cert, _key = self_signed(name)
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def seed(url: str, names: list[tuple[str, str]]) -> None:
    """Each (name, path): a password, two keys, a certificate, an MFA device, two groups and
    two managed policies."""
    iam = iam_client(url)
    arns = [
        iam.create_policy(PolicyName=p, PolicyDocument=ALLOW_S3)["Policy"]["Arn"] for p in POLICIES
    ]
    for group in GROUPS:
        iam.create_group(GroupName=group)

    def one(name_path: tuple[str, str]) -> None:
        name, path = name_path
        iam.create_user(UserName=name, Path=path)
        iam.create_login_profile(UserName=name, Password=f"Bench-{name}-Pw-2024!")
        for _ in range(2):
            iam.create_access_key(UserName=name)
        iam.upload_signing_certificate(UserName=name, CertificateBody=certificate(name))
        device = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)
        iam.enable_mfa_device(
            UserName=name,
            SerialNumber=device["VirtualMFADevice"]["SerialNumber"],
            AuthenticationCode1="123456",
            AuthenticationCode2="654321",
        )
        for group in GROUPS:
            iam.add_user_to_group(UserName=name, GroupName=group)
        for arn in arns:
            iam.attach_user_policy(UserName=name, PolicyArn=arn)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, names))


# --- the floor: a bare boto3 script, one call after the other ------------------------------
def floor_offboard(iam: Any, name: str) -> None:
    from botocore.exceptions import ClientError

    # The three cuts.
    iam.put_user_policy(UserName=name, PolicyName="deny-all", PolicyDocument=DENY_ALL)
    iam.delete_login_profile(UserName=name)
    keys = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    for key in keys:
        iam.update_access_key(UserName=name, AccessKeyId=key["AccessKeyId"], Status="Inactive")
    # The cleanup IAM requires before DeleteUser.
    for key in keys:
        iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    for cert in iam.list_signing_certificates(UserName=name)["Certificates"]:
        iam.delete_signing_certificate(UserName=name, CertificateId=cert["CertificateId"])
    for ssh in iam.list_ssh_public_keys(UserName=name)["SSHPublicKeys"]:
        iam.delete_ssh_public_key(UserName=name, SSHPublicKeyId=ssh["SSHPublicKeyId"])
    answer = iam.list_service_specific_credentials(UserName=name)
    for cred in answer["ServiceSpecificCredentials"]:
        iam.delete_service_specific_credential(
            UserName=name, ServiceSpecificCredentialId=cred["ServiceSpecificCredentialId"]
        )
    for device in iam.list_mfa_devices(UserName=name)["MFADevices"]:
        iam.deactivate_mfa_device(UserName=name, SerialNumber=device["SerialNumber"])
        iam.delete_virtual_mfa_device(SerialNumber=device["SerialNumber"])
    for policy in iam.list_user_policies(UserName=name)["PolicyNames"]:
        iam.delete_user_policy(UserName=name, PolicyName=policy)
    for attached in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]:
        iam.detach_user_policy(UserName=name, PolicyArn=attached["PolicyArn"])
    for group in iam.list_groups_for_user(UserName=name)["Groups"]:
        iam.remove_user_from_group(UserName=name, GroupName=group["GroupName"])
    iam.delete_user(UserName=name)
    try:
        iam.get_user(UserName=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchEntity":
            return
        raise
    raise SystemExit(f"the floor script left {name} in IAM")


# --- RoleUp: the store, the requests, the clicks --------------------------------------------
def prepare_store(env: dict[str, str], moto_url: str) -> None:
    """The integration (prefix /bench/, a key, one approver) and a first sync, as an admin
    would have it before anyone is offboarded."""
    from bot.services.aws import AwsClients, seal_key_pair
    from bot.services.container import Core
    from bot.services.sync import sync_integration
    from bot.settings import Settings
    from storage.crypto import SecretBox
    from storage.db import make_engine, make_sessionmaker
    from storage.models import Integration

    subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    key = env["ROLEUP_ENCRYPTION_KEYS"]
    engine = make_engine(env["DATABASE_URL"])
    box = SecretBox([key])
    core = Core(
        settings=Settings(database_url=env["DATABASE_URL"], encryption_keys=(key,)),
        engine=engine,
        sessions=make_sessionmaker(engine),
        box=box,
        aws=AwsClients(endpoint_url=moto_url),
    )
    with core.sessions.begin() as session:
        row = Integration(
            name="bench",
            path_prefix=ROLEUP_PATH,
            managers=[MANAGER],
            approvers=[APPROVER],
            approvals_channel=CHANNEL,
            credentials_ciphertext=seal_key_pair(box, "AKIABENCHBENCHBENCH", "b" * 40),
            access_key_hint="AKIA…ENCH",
            created_by="bench",
        )
        session.add(row)
        session.flush()
        integration_id = int(row.id)
    sync_integration(core, integration_id, actor="bench")
    engine.dispose()


class SlackTimes:
    """When each call reached the Slack stand-in (its listener runs as the call is answered)."""

    def __init__(self, api: FakeSlackApi) -> None:
        self.at: dict[int, float] = {}
        api.subscribe(self._note)

    def _note(self, call: Call) -> None:
        self.at[call.seq] = time.monotonic()


def message_text(call: Call) -> str:
    return json.dumps(call.params.get("blocks") or []) + str(call.params.get("text", ""))


@dataclass(frozen=True)
class Pending:
    user: str
    request_id: str
    ts: str  # the approval message's


def ask_offboard(server: Server, api: FakeSlackApi, user: str) -> Pending:
    """A signed `/offboard user`, then the approval message it posts (its Approve button)."""
    body = command_body(
        "/offboard",
        user,
        user_id=MANAGER,
        trigger_id=f"{user}.bench.trigger",
        response_url=f"{api.response_url_base}offboard-{user}",
    )
    answer = requests.post(
        f"{server.url}/slack/events",
        data=body,
        headers=signed_headers(SIGNING_SECRET, body),
        timeout=30,
    )
    answer.raise_for_status()

    def asked(call: Call) -> bool:
        return call.params.get("channel") == CHANNEL and user in message_text(call)

    try:
        (post, *_) = api.wait_for("chat.postMessage", timeout=PATIENCE, where=asked)
    except AssertionError:
        said = [
            c.params.get("text") for c in api.calls_to(f"response_url:/respond/offboard-{user}")
        ]
        raise SystemExit(f"/offboard {user} posted no approval message; it said {said}") from None
    for block in post.params.get("blocks") or []:
        for element in block.get("elements", []):
            if element.get("action_id") == "approval_approve":
                return Pending(user, str(element["value"]), str(post.response["ts"]))
    raise SystemExit(f"the approval message for {user} has no Approve button")


def click_payload(api: FakeSlackApi, pending: Pending) -> dict[str, Any]:
    """A block_actions payload as Slack sends it when the approver clicks Approve."""
    return {
        "type": "block_actions",
        "team": {"id": "T0001", "domain": "roleup-bench"},
        "user": {"id": APPROVER, "username": "approver", "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy-unused",
        "trigger_id": f"{pending.user}.approve.trigger",
        "container": {"type": "message", "message_ts": pending.ts, "channel_id": CHANNEL},
        "channel": {"id": CHANNEL, "name": "approvals"},
        "message": {"type": "message", "ts": pending.ts, "text": "Offboarding request"},
        "response_url": f"{api.response_url_base}approve-{pending.user}",
        "actions": [
            {
                "type": "button",
                "action_id": "approval_approve",
                "block_id": "approval_actions",
                "value": pending.request_id,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


# --- one measured offboarding each way -----------------------------------------------------
@dataclass
class Run:
    """One offboarding's moments, in seconds from its start (the click, or the script's start)."""

    user: str
    cut_done: float  # (a) the last access-cutting call answered
    gone: float  # (b) AWS answered NoSuchEntity to the GetUser after DeleteUser
    calls: int
    first_call: float = 0.0  # the first AWS call reached the proxy
    cut_sent: float = 0.0  # the first access-cutting call reached the proxy
    ack: float = 0.0  # Slack's request answered (RoleUp only)
    slack_done: float = 0.0  # the approval message updated to "Done" (RoleUp only)
    slack_before_aws: int = 0  # Slack Web API calls between the click and the first AWS call
    aws_idle: float = 0.0  # of the time to (b), how long no AWS call was in flight
    cleanup_sent: float = 0.0  # the first call after the last cut answered reached the proxy


def moments(wire: TimedWire, user: str, started: float) -> Run:
    hits = wire.of_user(user, started)
    cuts = [h for h in hits if h.action in CUTS]
    deleted = [h for h in hits if h.action == "DeleteUser" and h.status == 200]
    if not cuts or not deleted:
        raise SystemExit(f"{user}: no cut or no DeleteUser on the wire: {[h.action for h in hits]}")
    confirmed = [
        h
        for h in hits
        if h.action == "GetUser" and h.status == 404 and h.arrived >= deleted[0].answered
    ]
    if not confirmed:
        raise SystemExit(f"{user}: AWS was never asked whether the user is gone")
    cut_done = max(h.answered for h in cuts)
    gone = confirmed[0].answered
    after_cuts = [h.arrived for h in hits if h.arrived >= cut_done]
    return Run(
        user=user,
        cut_done=cut_done - started,
        gone=gone - started,
        calls=len(hits),
        first_call=hits[0].arrived - started,
        cut_sent=min(h.arrived for h in cuts) - started,
        aws_idle=(gone - started) - in_flight(hits, gone),
        cleanup_sent=(min(after_cuts) if after_cuts else cut_done) - started,
    )


def in_flight(hits: list[Hit], until: float) -> float:
    """How long at least one of these calls was outstanding, up to `until` (a union of
    intervals): the rest of an offboarding's time is spent on something other than AWS."""
    total, reach = 0.0, float("-inf")
    for hit in sorted(hits, key=lambda h: h.arrived):
        start, end = max(hit.arrived, reach), min(hit.answered, until)
        if end > start:
            total += end - start
        reach = max(reach, min(hit.answered, until))
    return total


def run_floor(wire: TimedWire, user: str) -> Run:
    iam = iam_client(wire.url)  # built before the clock starts: the floor is the calls alone
    iam.get_account_summary()  # and its connection is open, as a script's would be by now
    started = time.monotonic()
    floor_offboard(iam, user)
    return moments(wire, user, started)


def run_roleup(
    server: Server, api: FakeSlackApi, wire: TimedWire, slack: SlackTimes, pending: Pending
) -> Run:
    body = payload_body(click_payload(api, pending))
    headers = signed_headers(SIGNING_SECRET, body)
    started = time.monotonic()
    answer = requests.post(f"{server.url}/slack/events", data=body, headers=headers, timeout=30)
    acked = time.monotonic() - started
    if answer.status_code != 200:
        raise SystemExit(f"the Approve click for {pending.user} got {answer.status_code}")

    def finished(call: Call) -> bool:
        text = message_text(call)
        return (
            call.params.get("ts") == pending.ts
            and ":hourglass_flowing_sand:" not in text
            and ("Done" in text or "Failed" in text)
        )

    (update, *_) = api.wait_for("chat.update", timeout=PATIENCE, where=finished)
    if "Done" not in message_text(update):
        raise SystemExit(f"offboarding {pending.user} failed: {update.params.get('text')}")
    run = moments(wire, pending.user, started)
    run.ack = acked
    run.slack_done = slack.at.get(update.seq, time.monotonic()) - started
    first_aws = started + run.first_call
    run.slack_before_aws = sum(
        1
        for call in list(api.calls)
        if started <= slack.at.get(call.seq, 0.0) < first_aws
        and not call.method.startswith("response_url:")
    )
    return run


def settle(api: FakeSlackApi) -> None:
    """Let the previous offboarding's tail (its DM, audit) finish before the next clock starts."""
    deadline = time.monotonic() + 5
    quiet_since = time.monotonic()
    count = len(api.calls)
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if len(api.calls) != count or api.busy:
            count, quiet_since = len(api.calls), time.monotonic()
        elif time.monotonic() - quiet_since >= 0.3:
            return


# --- the run --------------------------------------------------------------------------------
@dataclass
class Results:
    roleup: list[Run] = field(default_factory=list)
    floor: list[Run] = field(default_factory=list)
    warm_roleup: Run | None = None
    warm_floor: Run | None = None
    load: list[tuple[float, float, float]] = field(default_factory=list)
    #: --trace: where the server's time went, per phase (label, median ms).
    phases: list[tuple[str, float]] = field(default_factory=list)


def run(args: argparse.Namespace) -> int:
    api = FakeSlackApi().start()
    slack = SlackTimes(api)
    server: Server | None = None
    results = Results(load=[os.getloadavg()])
    try:
        with (
            tempfile.TemporaryDirectory(prefix="roleup-bench-revoke-") as tmp,
            moto_server(Path(tmp)) as moto_url,
            database(args.db, Path(tmp)) as database_url,
        ):
            wire = TimedWire(moto_url, args.aws_latency / 1000)
            wire.start()
            try:
                pairs = [(f"roleup-{n:02d}", f"floor-{n:02d}") for n in range(args.users + 1)]
                seed(
                    moto_url,
                    [(r, ROLEUP_PATH) for r, _ in pairs] + [(f, FLOOR_PATH) for _, f in pairs],
                )
                env = roleup_env(database_url, api.url)
                env["AWS_ENDPOINT_URL"] = wire.url  # every call RoleUp makes goes by the proxy
                trace = Path(tmp) / "trace"
                if args.trace:
                    trace.mkdir()
                    env["PYTHONPATH"] = str(ROOT / "bench" / "revoke_trace")
                    env["ROLEUP_BENCH_TRACE"] = str(trace)
                prepare_store(env, moto_url)
                port = free_port()
                argv = [sys.executable, "-m", "bot", "serve", "--bind", f"127.0.0.1:{port}"]
                argv += ["--workers", str(args.workers), "--threads", str(args.threads)]
                server = start_server("roleup", argv, env, port, Path(tmp))
                pending = [ask_offboard(server, api, r) for r, _ in pairs]
                settle(api)
                measure(server, api, wire, slack, pairs, pending, results)
                if args.trace:
                    server.stop()  # every traced call written
                    results.phases = server_phases(trace)
            finally:
                wire.stop()
                if server is not None:
                    server.stop()
    finally:
        api.stop()
    results.load.append(os.getloadavg())
    return report(args, results)


def measure(
    server: Server,
    api: FakeSlackApi,
    wire: TimedWire,
    slack: SlackTimes,
    pairs: list[tuple[str, str]],
    pending: list[Pending],
    results: Results,
) -> None:
    for index, ((_, floor_user), asked) in enumerate(zip(pairs, pending, strict=True)):
        # Alternate which goes first, so drift in the machine's load falls on both alike.

        def roleup(asked: Pending = asked, index: int = index) -> None:
            done = run_roleup(server, api, wire, slack, asked)
            if index == 0:
                results.warm_roleup = done
            else:
                results.roleup.append(done)
            settle(api)

        def floor(floor_user: str = floor_user, index: int = index) -> None:
            done = run_floor(wire, floor_user)
            if index == 0:
                results.warm_floor = done
            else:
                results.floor.append(done)

        order: list[Callable[[], None]] = [roleup, floor] if index % 2 else [floor, roleup]
        for step in order:
            step()
        if index:
            last = results.roleup[-1]
            print(
                f"  {last.user}: cut {last.cut_done * 1000:.0f} ms, gone {last.gone * 1000:.0f} ms"
                f" | {results.floor[-1].user}: cut {results.floor[-1].cut_done * 1000:.0f} ms,"
                f" gone {results.floor[-1].gone * 1000:.0f} ms",
                flush=True,
            )


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.0f}" if values else f"{'-':>8}"


def report(args: argparse.Namespace, results: Results) -> int:
    roleup, floor = results.roleup, results.floor
    start, end = results.load
    print(
        f"offboarding {len(roleup)} users each way ({args.db} store, `roleup serve` gunicorn "
        f"gthread {args.workers} workers x {args.threads} threads, {os.cpu_count()} CPUs, "
        f"loopback; load average {start[0]:.2f} before, {end[0]:.2f} after)"
    )
    if args.aws_latency:
        print(f"every AWS call delayed {args.aws_latency:g} ms by the proxy, as a network would")
    print(
        "per user: 1 password, 2 access keys, 1 signing certificate, 1 virtual MFA device, "
        "2 groups, 2 managed policies"
    )
    print(f"{'median ms from the click / the script start':52} {'RoleUp':>8} {'floor':>8}")

    def line(label: str, ours: list[float], theirs: list[float] | None = None) -> None:
        print(f"{label:52} {ms(ours)} {ms(theirs or [])}")

    line("Approve click acknowledged (HTTP 200)", [r.ack for r in roleup])
    line(
        "first AWS call reaches AWS", [r.first_call for r in roleup], [r.first_call for r in floor]
    )
    line(
        "first access-cutting call reaches AWS",
        [r.cut_sent for r in roleup],
        [r.cut_sent for r in floor],
    )
    line(
        "(a) last access-cutting call answered",
        [r.cut_done for r in roleup],
        [r.cut_done for r in floor],
    )
    line("(b) AWS confirms the user is gone", [r.gone for r in roleup], [r.gone for r in floor])
    line("Slack message shows Done", [r.slack_done for r in roleup])
    print("where RoleUp's time goes (medians of each user's own intervals, ms):")
    line("  click -> first AWS call", [r.first_call for r in roleup])
    line(
        "  first AWS call -> first cut sent",
        [r.cut_sent - r.first_call for r in roleup],
        [r.cut_sent - r.first_call for r in floor],
    )
    line(
        "  first cut sent -> last cut answered",
        [r.cut_done - r.cut_sent for r in roleup],
        [r.cut_done - r.cut_sent for r in floor],
    )
    line(
        "  last cut answered -> next AWS call sent",
        [r.cleanup_sent - r.cut_done for r in roleup],
        [r.cleanup_sent - r.cut_done for r in floor],
    )
    line(
        "  last cut answered -> user gone",
        [r.gone - r.cut_done for r in roleup],
        [r.gone - r.cut_done for r in floor],
    )
    line("  user gone -> Slack shows Done", [r.slack_done - r.gone for r in roleup])
    line(
        "no AWS call in flight, start -> user gone",
        [r.aws_idle for r in roleup],
        [r.aws_idle for r in floor],
    )
    slack_calls = statistics.median([r.slack_before_aws for r in roleup]) if roleup else 0
    calls = (
        statistics.median([r.calls for r in roleup]) if roleup else 0,
        statistics.median([r.calls for r in floor]) if floor else 0,
    )
    print(f"Slack Web API calls between the click and the first AWS call (median): {slack_calls:g}")
    print(f"AWS calls per offboarding (median): RoleUp {calls[0]:g}, floor {calls[1]:g}")
    if results.phases:
        print("inside the server, from the click's arrival in the Flask app (--trace, ms):")
        for label, median in results.phases:
            print(f"  {label:50} {median:8.1f}")
    if results.warm_roleup and results.warm_floor:
        w, f = results.warm_roleup, results.warm_floor
        print(
            f"warm-up pair, not counted: RoleUp (a) {w.cut_done * 1000:.0f} ms, (b) "
            f"{w.gone * 1000:.0f} ms; floor (a) {f.cut_done * 1000:.0f} ms, "
            f"(b) {f.gone * 1000:.0f} ms"
        )
    if not roleup or not floor:
        print("no measured pairs")
        return 1
    cut = statistics.median([r.cut_done for r in roleup]) / statistics.median(
        [r.cut_done for r in floor]
    )
    gone = statistics.median([r.gone for r in roleup]) / statistics.median([r.gone for r in floor])
    ok = cut <= args.target_cut and gone <= args.target_gone
    print(
        f"(a) click -> access cut: {cut:.2f}x the floor's three cuts (target <= {args.target_cut}x)"
    )
    print(
        f"(b) click -> user gone: {gone:.2f}x the floor's full cleanup "
        f"(target <= {args.target_gone}x)"
    )
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


# --- --trace: the server's own phases ------------------------------------------------------
Traced = tuple[str, str, float, float]  # name, thread, start, end (monotonic)


def server_phases(folder: Path) -> list[tuple[str, float]]:
    """Medians over the measured clicks (the warm-up's left out) of where the server's time
    went, from each click's arrival in the Flask app (bench/revoke_trace notes the calls)."""
    clicks: list[dict[str, float]] = []
    for path in folder.glob("*.tsv"):
        noted: list[Traced] = []
        for line in path.read_text().splitlines():
            name, thread, start, end = line.split("\t")
            noted.append((name, thread, float(start), float(end)))
        for decided in (n for n in noted if n[0] == "decide"):
            clicks.append(_phases_of(decided, noted))
    clicks = [c for c in sorted(clicks, key=lambda c: c["at"])[1:] if c]
    labels = [
        ("listener", "Bolt hands the click to its listener"),
        ("read", "the decision's read (one session)"),
        ("check", "may this person decide (policy, Slack standing)"),
        ("decision", "approve and claim, committed (one transaction)"),
        ("setup", "the run set up, to the first AWS call"),
        ("to_first_call", "= click -> first AWS call"),
        ("user_check", "the user check (GetUser, ListAccessKeys beside it)"),
        ("cuts", "the cuts, first sent -> last answered"),
        ("to_cut", "= click -> last cut answered"),
    ]
    return [
        (label, statistics.median(c[key] for c in clicks) * 1000)
        for key, label in labels
        if clicks and all(key in c for c in clicks)
    ]


def _phases_of(decided: Traced, noted: list[Traced]) -> dict[str, float]:
    _, _, begun, ended = decided
    arrivals = [n[2] for n in noted if n[0] == "Flask.wsgi_app" and n[2] <= begun]
    if not arrivals:
        return {}
    arrived = max(arrivals)
    during = sorted((n for n in noted if begun <= n[2] <= ended), key=lambda n: n[2])

    def first(name: str) -> Traced | None:
        return next((n for n in during if n[0] == name), None)

    read, check = first("_read_for_decision"), first("_check_decider")
    quorum, run, cut = first("_with_quorum_as_of_now"), first("_run_loaded"), first("_cut_access")
    calls = [n for n in during if n[0] == "BaseClient._make_api_call"]
    if not (read and check and quorum and run and cut and calls):
        return {}
    cuts = [n for n in calls if cut[2] <= n[2] <= cut[3]]
    return {
        "at": arrived,
        "listener": begun - arrived,
        "read": read[3] - read[2],
        "check": check[3] - check[2],
        "decision": run[2] - quorum[3],
        "setup": calls[0][2] - run[2],
        "to_first_call": calls[0][2] - arrived,
        "user_check": cut[2] - calls[0][2],
        "cuts": max(n[3] for n in cuts) - min(n[2] for n in cuts),
        "to_cut": max(n[3] for n in cuts) - arrived,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--users", type=int, default=20, help="measured users each way")
    parser.add_argument("--workers", type=int, default=2, help="as `roleup serve` defaults")
    parser.add_argument("--threads", type=int, default=8, help="as `roleup serve` defaults")
    parser.add_argument(
        "--aws-latency",
        type=float,
        default=0.0,
        metavar="MS",
        help="added by the proxy to every AWS call, as a network round trip (default: none)",
    )
    parser.add_argument("--target-cut", type=float, default=1.0)
    parser.add_argument("--target-gone", type=float, default=1.0)
    parser.add_argument(
        "--trace",
        action="store_true",
        help="also note, inside the server, when each phase of a click ran (bench/revoke_trace)",
    )
    parser.add_argument("--serve-moto", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_moto:
        serve_moto(args.serve_moto)
        return 0
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the proxy's line per request
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    # A terminated run still stops its servers (the `finally` blocks run on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
