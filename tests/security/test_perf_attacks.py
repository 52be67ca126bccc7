"""Attacks on what the performance work traded: kept threads, clicks that work in the listener
thread, kept-alive reply connections, listeners matched on the body, the sync's diffing."""

from __future__ import annotations

import http.server
import json
import ssl
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from bot.services import approvals
from bot.services import sync as sync_module
from bot.services.errors import RoleUpError
from bot.services.offboard_requests import request_offboard, targets_by_username
from bot.services.sync import SyncReport, sync_integration
from bot.slack import commands
from bot.slack.respond import PooledRespond, ResponsePool
from storage.models import Account, AuditEvent, Group, Membership
from tests.support.approvals import (
    PATIENCE,
    add_integration,
    click,
    make_user,
    user_exists,
    wait_until,
)
from tests.support.aws_wire import (  # noqa: F401 (the fixtures `wire`, `settings`)
    AwsWire,
    recording_wire,
    settings_through_wire,
)
from tests.support.certificates import self_signed
from tests.support.concurrency import race
from tests.support.seed import ADMIN
from tests.support.slack_answers import _acked, _text

# moto 5 lacks service-specific credentials: answer as AWS does for a user with none.
pytestmark = [pytest.mark.usefixtures("moto_gaps"), pytest.mark.moto_server]

LISTENER_THREADS = 16  # bot.app's listener pool


def offboarded(core, request_id) -> int:
    with core.sessions() as s:
        return s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.request_id == request_id, AuditEvent.action == "iam.offboard")
        )


def state_of(core, request_id) -> str:
    return approvals.load(core, request_id).state


def held_users(wire) -> set[str]:
    return {c.params.get("UserName", "") for c in wire.calls if c.action == "GetUser"}


# --- 2. clicks that work after their ack ---------------------------------------------------
def test_clicks_stuck_on_a_slow_aws_leave_other_commands_acked(
    roleup, slack, slack_api, aws, wire, monkeypatch
):
    """As many Approve clicks as the app has listener threads, each offboarding against an AWS
    that does not answer yet: another user's /accounts is still acked (Bolt answers 404 for a
    listener that has not acked within 3 s) and answered, and every offboarding then runs once."""
    # The listing is given all the time a slow machine needs to be answered in its ack: one
    # waiting behind the stuck clicks would wait until they are released, after the assertion.
    monkeypatch.setattr(commands, "ANSWER_WITHIN", 30)
    core = roleup.core
    integration_id = add_integration(core)
    names = [f"slow{n:02d}" for n in range(LISTENER_THREADS + 1)]
    requests = []
    for name in names:
        make_user(aws, core, integration_id, name)
        requests.append(
            request_offboard(
                core, requester="UMANAGER", targets=targets_by_username(core, name), asked_for=name
            ).id
        )
    gate = wire.hold(lambda call: call.action == "GetUser")
    try:
        for request_id in requests:
            click(slack, "approval_approve", request_id, user="UAPPROVER")
        wait_until(lambda: held_users(wire) == set(names), timeout=PATIENCE)
        slack_api.reset()
        response = slack.command("/accounts", "prod", user_id=ADMIN)
        assert "*slow00*" in _text(_acked(response))  # answered in its ack, not only acked
    finally:
        gate.set()
    for name, request_id in zip(names, requests, strict=True):
        wait_until(lambda r=request_id: offboarded(core, r) == 1, timeout=PATIENCE)
        assert not user_exists(aws, name)


# --- 1. kept threads: credentials per call, a failing run, many runs at once ----------------
KEY_ONE = ("AKIAONEONEONEONE", "1" * 40)
KEY_TWO = ("AKIATWOTWOTWOTWO", "2" * 40)
BROKEN = "one04"  # its password removal is refused: that run fails, the others must not


def test_twenty_offboardings_at_once_on_two_integrations_sign_with_their_own_keys(
    roleup, slack, aws, wire
):
    """Ten users in each of two integrations, all approved at once: each AWS call is signed
    with the key of its own user's integration (a credential bound on a kept thread never
    leaks into the next run), one run failing leaves the pools working, and all finish."""
    core = roleup.core
    integrations = {
        "one": (add_integration(core, "one", key=KEY_ONE), KEY_ONE[0]),
        "two": (add_integration(core, "two", key=KEY_TWO), KEY_TWO[0]),
    }
    asked: dict[str, str] = {}
    for prefix, (integration_id, _) in integrations.items():
        for n in range(10):
            name = f"{prefix}{n:02d}"
            make_user(aws, core, integration_id, name)
            asked[name] = request_offboard(
                core, requester="UMANAGER", targets=targets_by_username(core, name), asked_for=name
            ).id
    wire.refuse(lambda c: c.action == "DeleteLoginProfile" and c.params.get("UserName") == BROKEN)
    ids = list(asked.values())
    acked = race(len(ids), lambda n: click(slack, "approval_approve", ids[n], user="UAPPROVER"))
    assert [a for a in acked if isinstance(a, Exception)] == []
    for name, request_id in asked.items():
        if name != BROKEN:
            wait_until(lambda r=request_id: offboarded(core, r) == 1, timeout=PATIENCE)
            assert not user_exists(aws, name), name
    wait_until(lambda: state_of(core, asked[BROKEN]) == "failed", timeout=PATIENCE)
    assert user_exists(aws, BROKEN)
    signed = [c for c in wire.calls if c.params.get("UserName", "")[:3] in integrations]
    assert len(signed) > 20 * 5
    wrong = [
        (c.action, c.params["UserName"], c.key_id)
        for c in signed
        if c.key_id != integrations[c.params["UserName"][:3]][1]
    ]
    assert wrong == []


# --- 4. respond() over kept-alive connections ---------------------------------------------
class _Replies(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Slack's hooks host does
    seen: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def replies_host():
    handler = type("Replies", (_Replies,), {"seen": []})
    # A backlog for every thread's first connection at once (the default 5 resets some).
    listening = type("Listening", (http.server.ThreadingHTTPServer,), {"request_queue_size": 128})
    server = listening(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server, handler.seen
    server.shutdown()
    server.server_close()


def test_concurrent_answers_to_many_users_each_reach_only_their_own_response_url(replies_host):
    """Sixteen threads answering forty users over the pool's kept connections: each answer
    arrives once, at the response_url of the user it was for."""
    server, seen = replies_host
    pool = ResponsePool()
    base = f"http://127.0.0.1:{server.server_port}/actions/"

    def answer(user: int) -> None:
        respond = PooledRespond(response_url=f"{base}U{user:03d}/hook", pool=pool)
        for n in range(5):
            assert respond(text=f"for U{user:03d} #{n}").status_code == 200

    threads = [threading.Thread(target=answer, args=(user,)) for user in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool.clear()
    assert len(seen) == 40 * 5
    for path, body in seen:
        user = path.split("/")[2]
        assert json.loads(body)["text"].startswith(f"for {user} #"), (path, body)
    assert len({body for _, body in seen}) == 40 * 5


def _self_signed(tmp_path) -> tuple[str, str]:
    """A TLS server's certificate for 127.0.0.1 nobody vouches for, and its key, as files."""
    cert, key = self_signed("localhost", ip="127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


def test_an_https_response_url_with_a_certificate_nobody_vouches_for_gets_nothing(
    replies_host, tmp_path
):
    """The kept connections verify the certificate: a host with a self-signed one (a man in
    the middle) is refused before the answer, which may name accounts, is sent."""
    server, seen = replies_host
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(*_self_signed(tmp_path))
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    respond = PooledRespond(
        response_url=f"https://127.0.0.1:{server.server_port}/actions/U1/hook",
        pool=ResponsePool(),
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        respond(text="alice's accounts")
    assert seen == []


# --- 6. the sync's diffing: hostile values, removals, two syncs at once -------------------
LONG_TAG = "v" * 256  # IAM's longest tag value


def test_a_second_sync_at_once_reads_the_store_as_the_first_left_it(
    core, make_integration, aws, monkeypatch
):
    """Two syncs of one integration at once take turns over the store: the second reads the
    accounts, groups and last sync the first wrote, never a mix of before and after (on SQLite,
    whose FOR UPDATE is nothing, its reads had each their own snapshot: a sync read the
    accounts before the other committed and their memberships after, and failed on a name it
    had not read, or told every account as added)."""
    integration = make_integration("prod")
    aws.create_group(GroupName="ops")
    for name in ("ann", "bo", "cy"):
        aws.create_user(UserName=name)
        aws.add_user_to_group(GroupName="ops", UserName=name)
    real = sync_module._stored_accounts
    read: list[int] = []
    first_reads, second_reads = threading.Event(), threading.Event()

    def stored_accounts(session, integration_id):
        if not first_reads.is_set():
            first_reads.set()
            second_reads.wait(2)  # the second sync reads now, unless the first holds the store
        else:
            second_reads.set()
        found = real(session, integration_id)
        read.append(len(found))
        return found

    monkeypatch.setattr(sync_module, "_stored_accounts", stored_accounts)
    reports: list[object] = []
    first = threading.Thread(target=lambda: reports.append(sync_integration(core, integration.id)))
    first.start()
    assert first_reads.wait(10)
    second = threading.Thread(target=lambda: reports.append(sync_integration(core, integration.id)))
    second.start()
    first.join(30)
    second.join(30)
    assert read == [0, 3]  # the second read what the first had written
    assert [r.first_sync for r in reports] == [True, False]  # type: ignore[attr-defined]
    assert [len(r.added) for r in reports] == [0, 0]  # type: ignore[attr-defined]


def test_two_syncs_at_once_then_a_removal_leave_the_store_as_iam_has_it(
    core, make_integration, aws
):
    """Two syncs of one integration at once (two workers): each lands or fails plainly, and the
    store then holds IAM's users once each, with their odd paths and longest tags exactly; a
    user deleted in IAM before the next sync is gone from the store and told as removed."""
    integration = make_integration("prod")
    aws.create_group(GroupName="ops")
    names = [f"user{n:02d}" for n in range(30)]
    for n, name in enumerate(names):
        aws.create_user(
            UserName=name,
            Path="/team/../x/" if n % 2 else "/",
            Tags=[{"Key": "note", "Value": LONG_TAG}],
        )
        aws.add_user_to_group(GroupName="ops", UserName=name)
    outcomes = [
        o.user_message if isinstance(o, RoleUpError) else o
        for o in race(2, lambda _: sync_integration(core, integration.id))
    ]
    assert len(outcomes) == 2
    assert any(isinstance(o, SyncReport) for o in outcomes), outcomes
    for told in (o for o in outcomes if not isinstance(o, SyncReport)):
        assert "previous snapshot is kept" in str(told)
    assert stored(core, integration.id) == {
        (name, "/team/../x/" if n % 2 else "/", LONG_TAG, ("ops",)) for n, name in enumerate(names)
    }
    aws.remove_user_from_group(GroupName="ops", UserName="user07")
    aws.delete_user(UserName="user07")
    report = sync_integration(core, integration.id)
    assert [d.user_name for d in report.removed] == ["user07"]
    assert "user07" not in {row[0] for row in stored(core, integration.id)}
    assert len(stored(core, integration.id)) == 29


def stored(core, integration_id) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """Each stored account of the integration: name, path, its note tag and its groups."""
    with core.sessions() as s:
        groups: dict[int, list[str]] = {}
        memberships = (
            select(Membership.account_id, Group.name)
            .join(Group, Group.id == Membership.group_id)
            .where(Group.integration_id == integration_id)
        )
        for account_id, group in s.execute(memberships):
            groups.setdefault(account_id, []).append(group)
        accounts = s.scalars(select(Account).where(Account.integration_id == integration_id))
        return {
            (a.user_name, a.path, a.tags.get("note", ""), tuple(sorted(groups.get(a.id, []))))
            for a in accounts
        }
