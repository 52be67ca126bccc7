"""The public invite page under hostile traffic, through the real Flask app on both stores.

A flood of anonymous requests cannot flush the log masker, an invite takes ten wrong answers
and is then locked (its creator told in Slack), every address is rate limited through the
store, and a name taken anywhere in the account is refused in the same words.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import re
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from bot.logging_setup import install_redaction, registry, secret_in_flight
from bot.services import invites
from bot.services.rate_limit import RateLimiter
from storage.models import AuditEvent, Invite, RateLimitHit, Request
from tests.support.invite_kit import GOOD_PASSWORD, make_invite
from tests.support.seed import add_integration

pytestmark = pytest.mark.moto_server

FLOOD = 10_000
ADDRESSES = 500  # a botnet: FLOOD / ADDRESSES = 20 requests each, under the limit of 30


@pytest.fixture
def client(roleup):
    return roleup.web.test_client()


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything the process logs at INFO and above, masked as `roleup serve` masks it."""
    factory = logging.getLogRecordFactory()
    install_redaction()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logging.setLogRecordFactory(factory)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "the form has no CSRF token"
    return found.group(1)


def open_form(client, token: str, address: str = "192.0.2.1") -> str:
    response = client.get(f"/invite/{token}", environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 200, response.text
    return csrf_of(response.text)


def answer(client, token: str, csrf: str, address: str = "192.0.2.1", **fields: str):
    data = {"csrf_token": csrf, "username": "newbie", "password": GOOD_PASSWORD}
    data["confirm"] = fields.get("password", GOOD_PASSWORD)
    data.update(fields)
    return client.post(f"/invite/{token}", data=data, environ_base={"REMOTE_ADDR": address})


def requests_made(core) -> int:
    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(Request)) or 0


# --- the flood --------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_flood_of_anonymous_requests_cannot_unmask_a_real_password(
    roleup, client, aws, log_output, monkeypatch
):
    invite = make_invite(roleup.core, add_integration(roleup.core))
    live = registry()
    # Another invitee's password, in flight the whole time: a flood must not evict it.
    other_password = "Another-Invitee-Pa55!"
    with secret_in_flight(other_password):
        held_before = len(live)
        monkeypatch.setattr(live, "peak", held_before)
        for i in range(FLOOD):
            address = f"2001:db8:{i % ADDRESSES:x}::1"  # each its own /64
            token = invites.new_token()
            if i % 2:
                response = client.get(f"/invite/{token}", environ_base={"REMOTE_ADDR": address})
            else:
                response = client.post(
                    f"/invite/{token}",
                    data={"username": f"u{i}", "password": f"Flood-Pa55-{i}!", "csrf_token": "0"},
                    environ_base={"REMOTE_ADDR": address},
                )
            assert response.status_code == 404, (i, response.status_code)
        assert live.peak == held_before <= live.limit  # the flood registered nothing
        logging.getLogger("roleup.test.leak").warning("a library logs %s", other_password)

    # Then the real invitee answers, and a careless library logs the password meanwhile.
    check_answer = invites.check_answer

    def leaky_check_answer(core, invite, *, username, password, confirm, handle=None):
        logging.getLogger("roleup.test.leak").warning("checking %s with %s", username, password)
        return check_answer(
            core, invite, username=username, password=password, confirm=confirm, handle=handle
        )

    monkeypatch.setattr(invites, "check_answer", leaky_check_answer)
    csrf = open_form(client, invite.token)
    response = answer(client, invite.token, csrf, username="real.person")
    assert response.status_code == 200, response.text
    assert requests_made(roleup.core) == 1

    output = log_output.getvalue()
    assert "checking real.person with [redacted]" in output
    assert "a library logs [redacted]" in output
    assert GOOD_PASSWORD not in output and other_password not in output
    assert invite.token not in output
    assert len(live) == held_before - 1  # both passwords let go once their requests ended
    assert live.peak <= live.limit


def test_a_full_secret_registry_answers_503_and_files_nothing(roleup, client, aws, log_output):
    invite = make_invite(roleup.core, add_integration(roleup.core))
    csrf = open_form(client, invite.token)
    live = registry()
    limit = live.limit
    live.limit = len(live)
    try:
        response = answer(client, invite.token, csrf)
    finally:
        live.limit = limit
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "60"
    assert "Nothing was changed" in response.text
    assert requests_made(roleup.core) == 0
    with roleup.core.sessions() as s:
        row = s.get(Invite, invite.invite_id)
        assert row is not None and row.used_at is None and row.failed_attempts == 0
    assert GOOD_PASSWORD not in log_output.getvalue()
    assert answer(client, invite.token, csrf).status_code == 200  # room again: it works


# --- wrong answers ----------------------------------------------------------------------------
def test_the_eleventh_wrong_answer_is_refused_and_the_creator_is_told(
    roleup, client, aws, slack_api
):
    invite = make_invite(roleup.core, add_integration(roleup.core))
    csrf = open_form(client, invite.token)
    for attempt in range(invites.MAX_FAILED_ATTEMPTS):
        response = answer(client, invite.token, csrf, password=f"weak{attempt}")
        assert response.status_code == 422, attempt
        assert "does not meet the policy" in response.text
    with roleup.core.sessions() as s:
        row = s.get(Invite, invite.invite_id)
        assert row is not None and row.locked_at is not None
        assert row.failed_attempts == invites.MAX_FAILED_ATTEMPTS
    # The 11th, even a good one, meets a dead link: the same page as any invalid link.
    refused = answer(client, invite.token, csrf)
    assert refused.status_code == 404
    assert "This invite link is not valid" in refused.text
    assert client.get(f"/invite/{invite.token}").status_code == 404
    assert requests_made(roleup.core) == 0
    # The creator is told once, in a DM.
    [sent] = slack_api.wait_for(
        "chat.postMessage", where=lambda c: c.params["channel"] == "UMANAGER"
    )
    assert "locked after 10 wrong answers" in sent.params["text"]
    assert "<@UNEWBIE>" in sent.params["text"]
    dms = [c for c in slack_api.calls_to("chat.postMessage") if c.params["channel"] == "UMANAGER"]
    assert len(dms) == 1
    assert GOOD_PASSWORD not in slack_api.all_text()
    with roleup.core.sessions() as s:
        actions = s.scalars(select(AuditEvent.action)).all()
    assert actions.count("invite.locked") == 1


def test_good_answers_and_aws_outages_do_not_count_as_wrong(roleup, client, aws):
    invite = make_invite(roleup.core, add_integration(roleup.core))
    csrf = open_form(client, invite.token)
    assert answer(client, invite.token, csrf, password="weak").status_code == 422
    assert answer(client, invite.token, csrf).status_code == 200
    with roleup.core.sessions() as s:
        row = s.get(Invite, invite.invite_id)
        assert row is not None and row.failed_attempts == 1 and row.locked_at is None


def test_parallel_wrong_answers_get_no_more_than_ten_checks(roleup, aws):
    invite = make_invite(roleup.core, add_integration(roleup.core))
    opened = invites.open_invite(roleup.core, invite.token)
    taken: list[bool] = []

    def take() -> None:
        try:
            invites.take_attempt(roleup.core, opened.id)
            taken.append(True)
        except invites.InviteNotFound:
            taken.append(False)

    threads = [threading.Thread(target=take) for _ in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert taken.count(True) == invites.MAX_FAILED_ATTEMPTS
    assert invites.lock_if_exhausted(roleup.core, opened) is True
    assert invites.lock_if_exhausted(roleup.core, opened) is False  # told once


# --- names taken outside the prefix ---------------------------------------------------------
def test_a_username_taken_outside_the_prefix_is_refused_in_the_same_words(roleup, client, aws):
    aws.create_user(UserName="insider", Path="/roleup/")
    aws.create_user(UserName="outsider", Path="/elsewhere/")
    integration = add_integration(roleup.core, path_prefix="/roleup/")
    invite = make_invite(roleup.core, integration)
    csrf = open_form(client, invite.token)
    shown = {}
    for name in ("insider", "outsider"):
        response = answer(client, invite.token, csrf, username=name)
        assert response.status_code == 422
        error = re.search(r'id="username-error" role="alert">([^<]*)<', response.text)
        assert error
        shown[name] = error.group(1).strip()
    assert shown["insider"] == shown["outsider"] == invites.TAKEN
    assert requests_made(roleup.core) == 0


def test_a_name_taken_in_another_spelling_is_refused_in_the_same_words(roleup, aws):
    """The late check (lifecycle) used to say "already taken (as Insider)"."""
    integration = add_integration(roleup.core)
    invite = invites.open_invite(roleup.core, make_invite(roleup.core, integration).token)
    from bot.services.errors import UserExists

    def exists(*_args, **_kwargs):
        raise UserExists("The username x is already taken (as X).")

    import bot.services.lifecycle as lifecycle

    original = lifecycle.check_onboard
    lifecycle.check_onboard = exists  # type: ignore[assignment]
    try:
        with pytest.raises(invites.InviteAnswerInvalid) as refused:
            invites._check_onboard(
                roleup.core,
                invite,
                invites.open_for_answer(roleup.core, invite),
                username="x1",
                password=GOOD_PASSWORD,
            )
    finally:
        lifecycle.check_onboard = original
    assert refused.value.errors == {"username": invites.TAKEN}


# --- the rate limit ---------------------------------------------------------------------------
@pytest.fixture
def tight(settings):
    return dataclasses.replace(settings, invite_rate_limit=3, invite_rate_window_seconds=3600)


def test_an_address_past_the_limit_gets_429_with_retry_after(tight, aws):
    from bot.app import create_app

    app = create_app(tight)
    try:
        client = app.web.test_client()
        token = invites.new_token()
        for _ in range(3):
            assert client.get(f"/invite/{token}").status_code == 404
        refused = client.get(f"/invite/{token}")
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 3600
        assert refused.headers["Cache-Control"] == "no-store"  # still the page's headers
        assert "Too many requests" in refused.text
        assert client.post(f"/invite/{token}", data={}).status_code == 429
        # Another address is not affected; the limit is the page's only, not /healthz's.
        other = client.get(f"/invite/{token}", environ_base={"REMOTE_ADDR": "192.0.2.9"})
        assert other.status_code == 404
        assert client.get("/healthz").status_code == 200
    finally:
        app.close()


def test_forwarded_for_counts_only_when_proxies_are_trusted(tight, aws):
    from bot.app import create_app

    token = invites.new_token()
    for proxies, expected in ((0, 429), (1, 404)):
        app = create_app(dataclasses.replace(tight, trusted_proxies=proxies))
        try:
            client = app.web.test_client()
            statuses = [
                client.get(
                    f"/invite/{token}",
                    headers={"X-Forwarded-For": f"198.51.100.{i}"},
                    environ_base={"REMOTE_ADDR": "10.0.0.1" if proxies else f"192.0.2.{proxies}"},
                ).status_code
                for i in range(4)
            ]
        finally:
            app.close()
        # Untrusted: a forged header changes nothing, the one peer is limited. Trusted: each
        # forwarded client is counted on its own.
        assert statuses[-1] == expected, (proxies, statuses)


def test_the_limiter_counts_every_hit_once_across_threads_and_prunes_old_windows(sessions):
    now = [1_000_000.0]
    limiter = RateLimiter(sessions, limit=50, window_seconds=60, clock=lambda: now[0])
    verdicts = []

    def hit() -> None:
        for _ in range(10):
            verdicts.append(limiter.hit("invite:192.0.2.7"))

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(v.hits for v in verdicts) == list(range(1, 81))  # no hit lost or counted twice
    assert sum(v.allowed for v in verdicts) == 50
    assert {v.retry_after for v in verdicts} == {20}  # 1_000_000 is 40 s into its window
    now[0] += 120  # two windows later: the old one is pruned
    assert limiter.hit("invite:192.0.2.7").hits == 1
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(RateLimitHit)) == 1


def test_one_ipv6_network_cannot_spread_its_requests_over_its_addresses(tight, aws):
    """A client holding an IPv6 /64 (every home line and VPS has one: 2^64 addresses) used to
    get a fresh limit per address; an IPv4 client written as `::ffff:a.b.c.d` a second one."""
    from bot.app import create_app

    app = create_app(tight)
    try:
        client = app.web.test_client()
        token = invites.new_token()
        statuses = [
            client.get(
                f"/invite/{token}", environ_base={"REMOTE_ADDR": f"2001:db8:1:2::{i:x}"}
            ).status_code
            for i in range(1, 6)
        ]
        assert statuses == [404, 404, 404, 429, 429]
        mapped = [
            client.get(f"/invite/{token}", environ_base={"REMOTE_ADDR": address}).status_code
            for address in ("192.0.2.7", "192.0.2.7", "::ffff:192.0.2.7", "::ffff:c000:207")
        ]
        assert mapped == [404, 404, 404, 429]
        # Another /64 is another client.
        other = client.get(f"/invite/{token}", environ_base={"REMOTE_ADDR": "2001:db8:1:3::1"})
        assert other.status_code == 404
    finally:
        app.close()
