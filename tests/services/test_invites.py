"""Invites: hashed single-use tokens, expiry, the answer's checks, one winner, no plaintext."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot import invite_page
from bot.services import approvals, invites
from bot.services.errors import (
    GroupNotFound,
    InvalidGroupName,
    InvalidPolicyArn,
    InvalidUsername,
    NotAllowed,
    ReadOnlyIntegration,
)
from bot.services.iam import PasswordRules
from bot.services.invites import InviteAnswerInvalid, InviteGone, InviteNotFound
from storage.models import Account, AuditEvent, Invite, Request, utcnow
from tests.support.invite_kit import GOOD_PASSWORD, make_invite
from tests.support.secrets import rows_containing
from tests.support.seed import add_integration


def invite_row(core, invite_id: int) -> Invite:
    with core.sessions() as s:
        row = s.get(Invite, invite_id)
        assert row is not None
        return row


def request_count(core) -> int:
    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(Request)) or 0


def answer(core, created, username="newbie", password=GOOD_PASSWORD, confirm=None):
    invite = invites.open_invite(core, created.token)
    return invites.answer_invite(
        core,
        invite,
        username=username,
        password=password,
        confirm=password if confirm is None else confirm,
        via="test",
    )


# --- create ---------------------------------------------------------------------------------
def test_an_invite_keeps_only_the_hash_of_a_256_bit_token(core, iam):
    created = make_invite(core, add_integration(core), groups=["devs", "devs", "ops"])
    assert len(created.token) == 43  # token_urlsafe(32): 256 random bits
    assert created.url == f"http://localhost:3000/invite/{created.token}"
    row = invite_row(core, created.invite_id)
    assert row.token_hash == invites.hash_token(created.token)
    assert row.groups == ["devs", "ops"]
    assert rows_containing(core.engine, created.token) == []
    assert created.token not in repr(created)


def test_an_invite_expires_after_48_hours_by_default(core, iam):
    created = make_invite(core, add_integration(core))
    row = invite_row(core, created.invite_id)
    assert row.expires_at - row.created_at == timedelta(hours=48)
    assert row.used_at is None


def test_two_invites_never_share_a_token(core, iam):
    integration_id = add_integration(core)
    tokens = {make_invite(core, integration_id).token for _ in range(20)}
    assert len(tokens) == 20


def test_a_read_only_integration_cannot_make_invites(core, iam):
    integration_id = add_integration(core, read_only=True)
    with pytest.raises(ReadOnlyIntegration, match="read-only"):
        make_invite(core, integration_id)
    assert rows_containing(core.engine, "UNEWBIE") == []


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"groups": ["bad group"]}, InvalidGroupName),
        ({"policies": ["not-an-arn"]}, InvalidPolicyArn),
        ({"slack_user_id": "<@U1>"}, InvalidUsername),
    ],
)
def test_an_invite_with_malformed_presets_is_refused(core, iam, changes, error):
    with pytest.raises(error):
        make_invite(core, add_integration(core), **changes)
    with core.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Invite)) == 0


def test_making_an_invite_is_audited_without_the_token(core, iam):
    created = make_invite(core, add_integration(core))
    with core.sessions() as s:
        events = s.scalars(select(AuditEvent)).all()
    assert [(e.action, e.actor, e.target) for e in events] == [
        ("invite.created", "UMANAGER", "<@UNEWBIE>")
    ]
    assert created.token not in str(events[0].detail)


# --- open -----------------------------------------------------------------------------------
def test_an_open_invite_shows_what_the_manager_preset(core, iam):
    arn = "arn:aws:iam::aws:policy/ReadOnlyAccess"
    created = make_invite(core, add_integration(core), groups=["devs"], policies=[arn])
    found = invites.open_invite(core, created.token)
    assert (found.integration, found.groups, found.policies) == ("prod", ["devs"], [arn])
    assert found.slack_user_id == "UNEWBIE"


@pytest.mark.parametrize(
    "bad",
    ["", "short", "../../etc/passwd", "x" * 43, "A" * 44, "%00" * 15, "é" * 43],
)
def test_unknown_or_malformed_tokens_are_not_found(core, iam, bad):
    make_invite(core, add_integration(core))
    with pytest.raises(InviteNotFound, match="not valid"):
        invites.open_invite(core, bad)


def test_a_tampered_token_is_not_found(core, iam):
    created = make_invite(core, add_integration(core))
    last = created.token[-1]
    tampered = created.token[:-1] + ("A" if last != "A" else "B")
    with pytest.raises(InviteNotFound):
        invites.open_invite(core, tampered)


def test_an_expired_invite_is_gone_and_says_so(core, iam):
    created = make_invite(core, add_integration(core), ttl_hours=1)
    later = utcnow() + timedelta(hours=1, seconds=1)
    with pytest.raises(InviteGone, match="expired") as caught:
        invites.open_invite(core, created.token, now=later)
    assert caught.value.reason == "expired"


def test_a_used_invite_is_gone_and_says_so(core, iam):
    created = make_invite(core, add_integration(core))
    answer(core, created)
    with pytest.raises(InviteGone, match="already used") as caught:
        invites.open_invite(core, created.token)
    assert caught.value.reason == "used"


@pytest.mark.parametrize("hostile", [0, -1, 2**31, 10**17])
def test_an_invite_id_out_of_range_is_simply_not_found(core, iam, hostile):
    with pytest.raises(InviteNotFound):
        invites.open_invite_by_id(core, hostile, slack_user_id="UNEWBIE")


def test_only_the_invited_slack_user_may_open_it_from_slack(core, iam):
    created = make_invite(core, add_integration(core))
    found = invites.open_invite_by_id(core, created.invite_id, slack_user_id="UNEWBIE")
    assert found.id == created.invite_id
    with pytest.raises(invites.NotYourInvite):
        invites.open_invite_by_id(core, created.invite_id, slack_user_id="USOMEONE")


# --- the password policy --------------------------------------------------------------------
def test_the_policy_is_read_from_the_account_and_spelled_out(core, iam):
    iam.update_account_password_policy(
        MinimumPasswordLength=14, RequireSymbols=True, RequireNumbers=True
    )
    rules = invites.password_policy(core, add_integration(core), actor="UINVITEE")
    assert rules.minimum_length == 14 and rules.require_symbols and rules.require_numbers
    words = invites.policy_rules(rules)
    assert "At least 14 characters (at most 128)." in words
    assert "At least one number (0-9)." in words
    assert any(line.startswith("At least one symbol: ! @ #") for line in words)
    assert not any("three of" in line for line in words)


def test_an_account_without_a_policy_gets_the_aws_default(core, iam):
    rules = invites.password_policy(core, add_integration(core), actor="UINVITEE")
    assert rules == PasswordRules()
    words = invites.policy_rules(rules)
    assert words[0] == "At least 8 characters (at most 128)."
    assert any("At least 3 of: uppercase letters" in line for line in words)


def test_a_password_against_a_strict_policy_is_refused_with_what_it_misses(core, iam):
    iam.update_account_password_policy(MinimumPasswordLength=20, RequireSymbols=True)
    created = make_invite(core, add_integration(core))
    with pytest.raises(InviteAnswerInvalid) as caught:
        answer(core, created, password="Only-Nineteen-Chars")
    assert caught.value.errors == {
        "password": "This password does not meet the policy: it needs at least 20 characters."
    }


# --- the answer's checks ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("username", "password", "confirm", "errors"),
    [
        ("", GOOD_PASSWORD, GOOD_PASSWORD, {"username": "Choose a username."}),
        ("has space", GOOD_PASSWORD, GOOD_PASSWORD, {"username": "1 to 64 characters"}),
        ("x" * 65, GOOD_PASSWORD, GOOD_PASSWORD, {"username": "1 to 64 characters"}),
        ("bad/slash", GOOD_PASSWORD, GOOD_PASSWORD, {"username": "1 to 64 characters"}),
        ("newbie", "", "", {"password": "Choose an initial password."}),
        ("newbie", "short", "short", {"password": "does not meet the policy"}),
        ("newbie", GOOD_PASSWORD, "other", {"confirm": "not the same"}),
        ("a b", "short", "short", {"username": "1 to 64", "password": "policy"}),
    ],
)
def test_a_wrong_answer_names_each_wrong_field_and_changes_nothing(
    core, iam, username, password, confirm, errors
):
    created = make_invite(core, add_integration(core))
    with pytest.raises(InviteAnswerInvalid) as caught:
        answer(core, created, username=username, password=password, confirm=confirm)
    assert set(caught.value.errors) == set(errors)
    for field, text in errors.items():
        assert text in caught.value.errors[field]
    if password:
        assert password not in str(caught.value)
    assert invite_row(core, created.invite_id).used_at is None
    assert request_count(core) == 0


def test_a_username_taken_in_aws_is_refused(core, iam):
    iam.create_user(UserName="alice")
    created = make_invite(core, add_integration(core))
    with pytest.raises(InviteAnswerInvalid) as caught:
        answer(core, created, username="alice")
    assert caught.value.errors == {"username": "That username is taken. Choose another one."}


def test_a_username_already_synced_is_refused(core, iam):
    integration_id = add_integration(core)
    with core.sessions.begin() as s:
        s.add(Account(integration_id=integration_id, user_name="bob"))
    with pytest.raises(InviteAnswerInvalid, match="taken"):
        answer(core, make_invite(core, integration_id), username="BOB")


def test_a_username_another_pending_request_asked_for_is_refused(core, iam):
    integration_id = add_integration(core)
    answer(core, make_invite(core, integration_id), username="carol")
    second = make_invite(core, integration_id, slack_user_id="UOTHER")
    with pytest.raises(InviteAnswerInvalid, match="taken"):
        answer(core, second, username="carol")


# --- answering ------------------------------------------------------------------------------
def test_an_answer_files_a_pending_request_with_the_password_only_encrypted(core, iam, box):
    iam.create_group(GroupName="devs")
    integration_id = add_integration(core)
    created = make_invite(core, integration_id, groups=["devs"])
    request = answer(core, created, username="newbie")
    assert request.state == approvals.PENDING
    assert request.kind == "invite_onboard"
    assert request.requester == "UNEWBIE"
    assert request.payload["username"] == "newbie"
    assert request.payload["groups"] == ["devs"]
    assert request.payload["slack_user_id"] == "UNEWBIE"
    assert request.payload["created_by"] == "UMANAGER"
    with core.sessions() as s:
        stored = s.get(Request, request.id)
        assert stored is not None and stored.secret_ciphertext
        assert box.decrypt(stored.secret_ciphertext, what="test") == GOOD_PASSWORD
    row = invite_row(core, created.invite_id)
    assert row.used_at is not None and row.request_id == request.id
    assert rows_containing(core.engine, GOOD_PASSWORD) == []


def test_a_second_answer_finds_the_invite_used(core, iam):
    created = make_invite(core, add_integration(core))
    invite = invites.open_invite(core, created.token)
    invites.answer_invite(
        core, invite, username="first", password=GOOD_PASSWORD, confirm=None, via="test"
    )
    with pytest.raises(InviteGone, match="already used"):
        invites.answer_invite(
            core, invite, username="second", password=GOOD_PASSWORD, confirm=None, via="test"
        )
    assert request_count(core) == 1


def test_of_answers_racing_each_other_exactly_one_wins(core, iam):
    created = make_invite(core, add_integration(core))
    invite = invites.open_invite(core, created.token)
    racers = 6
    barrier = threading.Barrier(racers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def race(index: int) -> None:
        barrier.wait()
        try:
            invites.claim(core, invite.id)
            result = "won"
        except InviteGone as exc:
            result = exc.reason
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["used"] * (racers - 1) + ["won"]


def test_full_answers_racing_each_other_file_one_request(core, iam):
    created = make_invite(core, add_integration(core))
    invite = invites.open_invite(core, created.token)
    racers = 4
    barrier = threading.Barrier(racers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def race(index: int) -> None:
        barrier.wait()
        try:
            invites.answer_invite(
                core,
                invite,
                username=f"racer{index}",
                password=GOOD_PASSWORD,
                confirm=None,
                via="test",
            )
            result = "won"
        except InviteGone as exc:
            result = exc.reason
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["used"] * (racers - 1) + ["won"]
    assert request_count(core) == 1


def test_an_expired_invite_cannot_be_claimed_even_if_opened_before(core, iam):
    created = make_invite(core, add_integration(core), ttl_hours=1)
    invite = invites.open_invite(core, created.token)
    with pytest.raises(InviteGone, match="expired"):
        invites.claim(core, invite.id, now=utcnow() + timedelta(hours=2))
    assert invite_row(core, created.invite_id).used_at is None


def test_a_preset_group_gone_from_aws_is_explained_and_changes_nothing(core, iam):
    created = make_invite(core, add_integration(core), groups=["vanished"])
    with pytest.raises(GroupNotFound, match="vanished"):
        answer(core, created)
    assert invite_row(core, created.invite_id).used_at is None
    assert request_count(core) == 0


def test_a_request_that_cannot_be_filed_leaves_the_invite_unused(core, iam):
    # Nobody at all could approve it: approvals refuses, and the invite stays answerable.
    integration_id = add_integration(core, managers=[], approvers=[], approvals_channel=None)
    created = make_invite(core, integration_id)
    with pytest.raises(NotAllowed):
        answer(core, created)
    assert invite_row(core, created.invite_id).used_at is None
    assert request_count(core) == 0
    assert invites.open_invite(core, created.token).id == created.invite_id


# --- the password is erased when the request ends ----------------------------------------------
def test_a_denied_invite_request_erases_the_password(core, iam):
    created = make_invite(core, add_integration(core))
    request = answer(core, created)
    approvals.decide(core, request.id, approver="UAPPROVER", approve=False)
    with core.sessions() as s:
        stored = s.get(Request, request.id)
        assert stored is not None
        assert (stored.state, stored.secret_ciphertext) == (approvals.DENIED, None)


def test_an_expired_invite_request_erases_the_password(core, iam):
    created = make_invite(core, add_integration(core))
    request = answer(core, created)
    assert approvals.expire_pending(core, now=utcnow() + timedelta(hours=25)) == 1
    with core.sessions() as s:
        stored = s.get(Request, request.id)
        assert stored is not None
        assert (stored.state, stored.secret_ciphertext) == (approvals.EXPIRED, None)


# --- CSRF tokens ------------------------------------------------------------------------------
def test_a_form_token_is_bound_to_the_invite_and_the_cookie(core, iam):
    token = invite_page.csrf_token(core, "hash-a", "nonce-1")
    assert invite_page.csrf_valid(core, "hash-a", "nonce-1", token)
    assert not invite_page.csrf_valid(core, "hash-b", "nonce-1", token)
    assert not invite_page.csrf_valid(core, "hash-a", "nonce-2", token)
    assert not invite_page.csrf_valid(core, "hash-a", None, token)
    assert not invite_page.csrf_valid(core, "hash-a", "nonce-1", None)
    assert not invite_page.csrf_valid(core, "hash-a", "nonce-1", token[:-1] + "0")


def test_tokens_and_chosen_passwords_are_masked_in_log_lines(core, iam, monkeypatch):
    from bot.logging_setup import MASK, redact, registry

    held = len(registry())
    created = make_invite(core, add_integration(core))
    invites.open_invite(core, created.token)
    line = redact(f'127.0.0.1 "GET /invite/{created.token} HTTP/1.1" 200')
    assert created.token not in line
    assert len(registry()) == held  # tokens are masked by their shape, never registered
    seen = []
    check_answer = invites.check_answer

    def logging_check(*args, **kwargs):
        seen.append(redact("chose Another-Secret-Passw0rd"))
        return check_answer(*args, **kwargs)

    monkeypatch.setattr(invites, "check_answer", logging_check)
    answer(core, created, password="Another-Secret-Passw0rd")
    assert seen == [f"chose {MASK}"]  # masked while the answer is handled
    assert len(registry()) == held  # then let go: it lives on only as the request's ciphertext


# --- reasons --------------------------------------------------------------------------------
def test_the_invite_creators_reason_is_required_then_carried_into_the_answer(core, iam):
    from bot.services.reasons import Justification, ReasonRequired

    integration_id = add_integration(core, require_reason=True)
    with pytest.raises(ReasonRequired):
        make_invite(core, integration_id)
    with core.sessions() as s:
        assert s.scalars(select(Invite)).all() == []
    why = Justification(reason="New data engineer", ticket="HR-42")
    created = make_invite(core, integration_id, why=why)
    request = answer(core, created)  # the invitee is never asked for a reason
    row = approvals.load(core, request.id)
    assert (row.reason, row.ticket) == ("New data engineer", "HR-42")
