"""Attacks on the ack path now that listeners run in the request's own thread (bot.app): the
HTTP response to Slack is sent when the listener returns, so a Slack Web API call, an AWS call
or a slow store left before the ack delays it past Slack's 3 seconds. Each attack holds the call
(the Web API stand-in, tests/support/held_calls.py; the AWS wire, tests/support/aws_wire.py)
and shows the ack came back while it was held. Really signed requests into the real app."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

import pytest
from sqlalchemy import func, select

from bot.services.offboard_requests import request_offboard, targets_by_username
from bot.slack.commands import WORKING
from storage.models import AuditEvent, Group, ManagedPolicy, Request
from tests.support.approvals import (
    add_integration,
    click,
    ephemeral_to,
    make_user,
    offboarding,
    user_exists,
)
from tests.support.aws_wire import (  # noqa: F401 (the fixtures `wire`, `settings`)
    recording_wire,
    settings_through_wire,
)
from tests.support.held_calls import PATIENCE, HeldCall, acked_while_held
from tests.support.invite_flow import answer_values, open_answer_form, send_invite, view_submission
from tests.support.invite_kit import GOOD_PASSWORD
from tests.support.modal import suggestion
from tests.support.onboard_modal import open_modal
from tests.support.seed import ADMIN, MANAGER, add_account
from tests.support.seed import add_integration as add_plain_integration
from tests.support.slack_answers import _acked, _text
from tests.support.slack_api import Call
from tests.support.waiting import wait_until

pytestmark = pytest.mark.moto_server

NEWCOMER = "UNEWCOMER"  # nobody has looked this person up yet: users.info is asked


@pytest.fixture
def sending() -> Iterator[Callable[..., Future]]:
    """Sends requests from other threads, so the test can watch a held call meanwhile."""
    with ThreadPoolExecutor(max_workers=80, thread_name_prefix="test-sender") as pool:
        yield pool.submit


@pytest.fixture
def prod(roleup, aws) -> int:
    """Integration prod with IAM user alice, a grantable group and a searchable policy."""
    integration_id = add_plain_integration(roleup.core)
    for group in ("ops", "developers"):  # developers: the invites' (tests/support/invite_flow)
        aws.create_group(GroupName=group)
        with roleup.core.sessions.begin() as session:
            session.add(Group(integration_id=integration_id, name=group))
        session.add(
            ManagedPolicy(
                integration_id=integration_id,
                arn="arn:aws:iam::aws:policy/ReadOnlyAccess",
                name="ReadOnlyAccess",
                aws_managed=True,
            )
        )
    aws.create_user(UserName="alice")
    add_account(roleup.core.sessions, integration_id, "alice", ())
    return integration_id


def looked_up(user: str) -> Callable[[Call], bool]:
    return lambda call: call.params.get("user") == user


# --- 1. every interaction acks before its slow work -----------------------------------------
def groups_modal(slack, slack_api) -> dict:
    assert slack.command("/groups", "alice").status_code == 200
    (filled,) = slack_api.wait_for("views.update", timeout=PATIENCE)
    return filled.params["view"]


def test_the_groups_search_answers_while_the_searchers_slack_profile_is_held(
    slack, slack_api, prod, sending
):
    """An options request is answered in its ack: who may search is asked of Slack (users.info)
    and must not hold that answer past Slack's 3 seconds; late, it is no options."""
    view = groups_modal(slack, slack_api)
    body = {**suggestion(view, "groups_search", "op", NEWCOMER), "block_id": "groups"}
    with HeldCall(slack_api, "users.info", looked_up(NEWCOMER)) as held:
        response = acked_while_held(held, lambda: slack.interact(body), sending)
        assert response.status_code == 200 and response.json()["options"] == []
    # Once Slack has answered, the same search is answered in full (a manager searching).
    manager = {**suggestion(view, "groups_search", "ops", MANAGER), "block_id": "groups"}
    assert [o["value"] for o in slack.interact(manager).json()["options"]] == ["ops"]


@pytest.mark.parametrize("action_id", ["onboard_policies", "onboard_groups"])
def test_the_onboard_searches_answer_while_the_searchers_slack_profile_is_held(
    slack, slack_api, prod, sending, action_id
):
    view = open_modal(slack, slack_api)
    body = suggestion(view, action_id, "", NEWCOMER)
    with HeldCall(slack_api, "users.info", looked_up(NEWCOMER)) as held:
        response = acked_while_held(held, lambda: slack.interact(body), sending)
        assert response.status_code == 200 and response.json()["options"] == []


def test_an_invite_answer_without_its_rules_is_acked_while_aws_is_held(
    slack, slack_api, prod, wire, sending
):
    """The answer form carries the password rules read when it opened; a form without them (one
    opened before they were carried) must not read them from AWS before its ack."""
    form = open_answer_form(slack, slack_api, send_invite(slack, slack_api))
    meta = json.loads(form["private_metadata"])
    del meta["rules"]
    stale = {**form, "private_metadata": json.dumps(meta)}
    policy_reads = len(wire.of("GetAccountPasswordPolicy"))
    gate = wire.hold(lambda call: call.action == "GetAccountPasswordPolicy")
    try:
        values = answer_values("newbie", GOOD_PASSWORD)
        answer = sending(view_submission, slack, "UNEWBIE", stale, values)
        wait_until(lambda: len(wire.of("GetAccountPasswordPolicy")) > policy_reads, PATIENCE)
        acked = answer.result(timeout=PATIENCE)  # never while the ack waits on AWS
        assert acked["response_action"] == "update"
        assert "Checking your choice with AWS" in json.dumps(acked["view"])
    finally:
        gate.set()
    slack_api.wait_for(
        "views.update", where=lambda c: "waiting for approval" in json.dumps(c.params)
    )


def test_integration_add_is_acked_while_its_modal_is_held_then_opens(slack, slack_api, sending):
    """/roleup integration add opens its modal on the trigger: the ack must not wait for
    views.open (nor for who the admin is, users.info)."""
    with HeldCall(slack_api, "views.open") as held:
        send = partial(slack.command, "/roleup", "integration add", user_id=ADMIN)
        response = acked_while_held(held, send, sending)
        assert response.status_code == 200
    (opened,) = slack_api.wait_for("views.open", timeout=PATIENCE)
    assert opened.params["view"]["callback_id"] == "integration_add"


def test_integration_add_is_acked_while_the_admins_slack_profile_is_held(slack, slack_api, sending):
    with HeldCall(slack_api, "users.info", looked_up(ADMIN)) as held:
        send = partial(slack.command, "/roleup", "integration add", user_id=ADMIN)
        assert acked_while_held(held, send, sending).status_code == 200
    (opened,) = slack_api.wait_for("views.open", timeout=PATIENCE)
    assert opened.params["view"]["callback_id"] == "integration_add"


# --- 4. load: commands at once while clicks wait on AWS -----------------------------------------
CLICKS, LISTINGS = 16, 50


def offboardings(core, request_id: str) -> int:
    with core.sessions() as session:
        return session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.request_id == request_id, AuditEvent.action == "iam.offboard")
        )


def test_fifty_listings_at_once_are_answered_while_sixteen_approvals_wait_on_aws(
    roleup, slack, slack_api, aws, wire, sending
):
    """16 Approve clicks whose offboardings are held at AWS (GetUser), then 50 /accounts at
    once: every click and every listing is acked while AWS is held (none stuck behind the held
    work), each listing answered in its ack or, later, once at its response_url; then each
    offboarding runs once."""
    core = roleup.core
    integration_id = add_integration(core)
    names = [f"held{n:02d}" for n in range(CLICKS)]
    requests_ = []
    for name in names:
        make_user(aws, core, integration_id, name)
        asked = request_offboard(
            core, requester="UMANAGER", targets=targets_by_username(core, name), asked_for=name
        )
        requests_.append(asked.id)
    # Making each request read its user already (GetUser): the held ones are the runs'.
    checked = len(wire.of("GetUser"))
    gate = wire.hold(lambda call: call.action == "GetUser")
    try:
        clicks = [
            sending(click, slack, "approval_approve", request_id, user="UAPPROVER")
            for request_id in requests_
        ]
        for clicked in clicks:
            assert clicked.result(timeout=PATIENCE).status_code == 200
        wait_until(
            lambda: {c.params.get("UserName") for c in wire.of("GetUser")[checked:]} >= set(names),
            PATIENCE,
        )
        listings = [
            sending(
                slack.command,
                "/accounts",
                "prod",
                user_id=ADMIN,
                response_url=f"{slack_api.response_url_base}list{n}",
            )
            for n in range(LISTINGS)
        ]
        answers = [_text(_acked(listed.result(timeout=PATIENCE))) for listed in listings]
        assert all(offboardings(core, r) == 0 for r in requests_)  # still held meanwhile
    finally:
        gate.set()
    for n, answer in enumerate(answers):
        if WORKING in answer:  # acked in time, answered when ready
            (late,) = slack_api.wait_for(f"response_url:/respond/list{n}", timeout=PATIENCE)
            answer = _text(late.params)
        assert "*held00*" in answer
    for name, request_id in zip(names, requests_, strict=True):
        wait_until(lambda r=request_id: offboardings(core, r) == 1, PATIENCE)
        assert not user_exists(aws, name)


# --- 3. retries and double clicks -----------------------------------------------------------
def test_a_retried_click_and_a_second_approver_while_aws_is_held_run_the_request_once(
    roleup, slack, slack_api, aws, wire, sending
):
    """The first Approve waits on AWS; Slack's retry of it and another approver's click are
    acked meanwhile; the offboarding runs once, the retry is answered by nobody and the other
    approver is told once that the request is taken."""
    core = roleup.core
    _, request_id = offboarding(aws, core, "dora")
    # Making the request read the user already (GetUser): the held one is the run's.
    checked = len(wire.of("GetUser"))
    gate = wire.hold(lambda call: call.action == "GetUser")
    try:
        click(slack, "approval_approve", request_id, user="UAPPROVER")
        wait_until(lambda: len(wire.of("GetUser")) > checked, PATIENCE)
        retried = sending(click, slack, "approval_approve", request_id, user="UAPPROVER", retry=1)
        other = sending(click, slack, "approval_approve", request_id, user="UAPPROVER2")
        assert retried.result(timeout=PATIENCE).status_code == 200
        assert other.result(timeout=PATIENCE).status_code == 200
        wait_until(lambda: len(ephemeral_to(slack_api, "UAPPROVER2")) == 1, PATIENCE)
    finally:
        gate.set()
    wait_until(lambda: offboardings(core, request_id) == 1, PATIENCE)
    assert not user_exists(aws, "dora")
    assert ephemeral_to(slack_api, "UAPPROVER") == []  # the retry did nothing, said nothing
    (told,) = ephemeral_to(slack_api, "UAPPROVER2")
    assert "already" in told or "approved" in told, told


def test_a_retried_command_files_one_request_and_is_answered_once(roleup, slack, slack_api, aws):
    integration_id = add_integration(roleup.core)
    make_user(aws, roleup.core, integration_id, "erin")
    first = slack.command("/offboard", "erin prod", trigger_id="77.88.offboard")
    retry = slack.command(
        "/offboard",
        "erin prod",
        trigger_id="77.88.offboard",
        headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    assert first.status_code == retry.status_code == 200
    assert first.text == "" and retry.text == ""
    slack_api.wait_for("response_url:/respond/cmd", timeout=PATIENCE)
    with roleup.core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Request)) == 1
    assert len(slack_api.calls_to("response_url:/respond/cmd")) == 1


# --- 2. errors after (or instead of) the ack ------------------------------------------------
ACTIONS = [
    "approval_approve", "approval_deny", "approval_retry", "review_open", "review_keep",
    "review_remove", "review_offboard", "review_page", "grant_end", "grant_extend",
    "breakglass_revoke", "breakglass_ack", "account_extend", "accounts_refresh",
    "accounts_previous", "accounts_next", "invite_open", "onboard_integration",
]  # fmt: skip
VIEWS = [
    "review_keep_view", "review_remove_view", "integration_edit", "integration_add",
    "grant_extend", "account_extend", "groups", "invite_create", "invite_answer", "onboard",
]  # fmt: skip
HOSTILE = "9" * 40 + "'; DROP TABLE requests; --\u0000<!channel>"
LEAKS = ("Traceback", "Error", "sqlalchemy", "DROP TABLE", 'File "')


def hostile(kind: str, **fields: object) -> dict:
    """A payload of `kind` from someone no integration knows, every value of it hostile."""
    return {
        "type": kind,
        "team": {"id": "T0001"},
        "user": {"id": "USTRANGER"},
        "api_app_id": "A0001",
        "trigger_id": "9.9.hostile",
        **fields,
    }


def hostile_click(action_id: str) -> dict:
    action = {"action_id": action_id, "block_id": "b", "value": HOSTILE, "action_ts": "1.3"}
    return hostile(
        "block_actions",
        container={"type": "view", "view_id": "VHOSTILE"},
        view={"id": "VHOSTILE", "private_metadata": HOSTILE, "hash": "h"},
        response_url="https://hooks.slack.com/actions/T0001/1/hostile",
        actions=[action],
    )


def hostile_view(callback_id: str) -> dict:
    state = {"values": {"x": {"y": {"type": "plain_text_input", "value": HOSTILE}}}}
    view = {
        "id": "VHOSTILE",
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": HOSTILE,
        "hash": "h",
        "state": state,
    }
    return hostile("view_submission", view=view)


@pytest.mark.parametrize("action_id", ACTIONS)
def test_a_hostile_click_is_acked_and_leaks_nothing(slack, slack_api, roleup, action_id):
    response = slack.interact(hostile_click(action_id))
    assert response.status_code == 200, response.text
    assert not any(leak in response.text for leak in LEAKS), response.text


@pytest.mark.parametrize("callback_id", VIEWS)
def test_a_hostile_submission_is_answered_in_its_ack_and_leaks_nothing(
    slack, slack_api, roleup, callback_id
):
    response = slack.interact(hostile_view(callback_id))
    assert response.status_code == 200, response.text
    assert not any(leak in response.text for leak in LEAKS), response.text
