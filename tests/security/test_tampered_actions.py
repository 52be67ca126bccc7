"""Approve / Deny / Retry clicks whose values were tampered with, sent as signed HTTP requests.

The button value is the only thing a clicker controls: another integration's request id, an id
that does not exist, a request already decided, or garbage. Each gets a short ephemeral answer
and the request, the audit log and the rest of the store stay as they were.
"""

from __future__ import annotations

import uuid
from functools import partial

import pytest
from sqlalchemy import select

from bot.services import approvals, integrations
from bot.slack.approval_messages import APPROVE_ACTION, DENY_ACTION, RETRY_ACTION
from storage.models import AuditEvent, Integration
from tests.security.payloads import block_action
from tests.security.snapshot import store_snapshot
from tests.support import seed
from tests.support.requests import submit_request
from tests.support.signing import payload_body, signed_headers

HOSTILE_VALUES = [
    "",
    "not-a-uuid",
    "0" * 36,
    str(uuid.uuid4()).upper(),
    "' OR '1'='1",
    "1; DROP TABLE requests; --",
    "\u202e" + str(uuid.uuid4()),  # right-to-left override in front of a real-looking id
    str(uuid.uuid4()) + "\x00",
    "x" * 10_000,
    "<!channel> <https://evil.example|click>",
]


# Without a key; each test names its approvers.
add_integration = partial(seed.add_integration, key=None)


def offboard_request(core, integration_id: int, integration: str, user: str = "alice"):
    return submit_request(
        core,
        kind="offboard",
        integration_id=integration_id,
        requester="UMANAGER",
        payload={
            "target": user,
            "accounts": [
                {"integration_id": integration_id, "integration": integration, "user_name": user}
            ],
        },
    )


def click(slack, slack_api, action_id: str, value: str, user: str, tag: str) -> str:
    """Click as `user`; return the ephemeral text the clicker was answered with."""
    payload = block_action(action_id, value, user_id=user)
    payload["response_url"] = slack_api.response_url_base + tag
    response = slack.interact(payload)
    assert response.status_code == 200
    answers = slack_api.wait_for(f"response_url:/respond/{tag}")
    return str(answers[-1].params.get("text", ""))


def audit_of(engine, request_id: str) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.outcome)
            .where(AuditEvent.request_id == request_id)
            .order_by(AuditEvent.id)
        )
        return [tuple(r) for r in rows]


@pytest.mark.parametrize("action_id", [APPROVE_ACTION, DENY_ACTION, RETRY_ACTION])
def test_a_tampered_or_unknown_request_id_is_refused_and_changes_nothing(
    roleup, slack, slack_api, engine, action_id
):
    integration_id = add_integration(roleup.core, "prod", approvers=["UAPPROVER"])
    offboard_request(roleup.core, integration_id, "prod")
    before = store_snapshot(engine)
    for index, value in enumerate(HOSTILE_VALUES):
        text = click(slack, slack_api, action_id, value, "UAPPROVER", f"tampered{index}")
        assert text == "That request no longer exists.", repr(value[:40])
    assert store_snapshot(engine) == before
    assert slack_api.calls_to("chat.update") == []


def test_an_approver_of_another_integration_cannot_decide_by_pasting_its_id(
    roleup, slack, slack_api, engine
):
    dev = add_integration(roleup.core, "dev", approvers=["UDEVAPPROVER"])
    prod = add_integration(roleup.core, "prod", approvers=["UPRODAPPROVER"])
    offboard_request(roleup.core, dev, "dev", user="bob")
    target = offboard_request(roleup.core, prod, "prod")
    for action_id in (APPROVE_ACTION, DENY_ACTION):
        text = click(slack, slack_api, action_id, target.id, "UDEVAPPROVER", action_id)
        assert "prod" in text and "approvers" in text.lower(), text
    assert approvals.load(roleup.core, target.id).state == approvals.PENDING
    assert audit_of(engine, target.id) == [
        ("UMANAGER", "request.created", "ok"),
        ("UDEVAPPROVER", "request.decide_refused", "refused"),
        ("UDEVAPPROVER", "request.decide_refused", "refused"),
    ]


def test_a_request_already_decided_is_not_decided_again(roleup, slack, slack_api, engine):
    integration_id = add_integration(roleup.core, "prod", approvers=["UAPPROVER", "UOTHER"])
    row = offboard_request(roleup.core, integration_id, "prod")
    payload = block_action(DENY_ACTION, row.id, user_id="UAPPROVER")
    assert slack.interact(payload).status_code == 200
    slack_api.wait_for("chat.update")  # the approval message now says denied
    slack_api.wait_for("chat.postMessage", count=2)  # the request, then the requester's DM
    before = store_snapshot(engine)
    for action_id in (APPROVE_ACTION, DENY_ACTION, RETRY_ACTION):
        text = click(slack, slack_api, action_id, row.id, "UOTHER", "again-" + action_id)
        assert text == "This request was already denied by <@UAPPROVER>.", text
    assert store_snapshot(engine) == before
    assert approvals.load(roleup.core, row.id).state == approvals.DENIED


def test_a_replayed_signed_click_executes_once(roleup, slack, slack_api, engine):
    """The same signed Approve sent twice (a replay inside the five-minute window) removes the
    integration once."""
    integration_id = add_integration(roleup.core, "prod", approvers=["UAPPROVER"])
    row = submit_request(
        roleup.core,
        kind="remove_integration",
        integration_id=integration_id,
        requester="UADMIN",
        payload={},
    )
    payload = block_action(APPROVE_ACTION, row.id, user_id="UAPPROVER")
    payload["response_url"] = slack_api.response_url_base + "replay"
    body = payload_body(payload)
    headers = signed_headers(slack.secret, body)
    for _ in range(2):
        assert slack.http.post(slack.url, data=body, headers=headers, timeout=10).status_code == 200
    # The loser is told; the winner tells the requester it is done.
    (answer,) = slack_api.wait_for("response_url:/respond/replay")
    assert "already approved by <@UAPPROVER>" in str(answer.params.get("text")), answer.params
    slack_api.wait_for("chat.postMessage", where=lambda c: c.params.get("channel") == "UADMIN")
    assert approvals.load(roleup.core, row.id).state == approvals.DONE
    actions = [a for _, a, _ in audit_of(engine, row.id)]
    assert actions.count("request.approved") == 1, actions
    assert actions.count("request.running") == 1, actions
    assert actions.count("request.done") == 1, actions
    with engine.connect() as conn:
        assert conn.execute(select(Integration.id)).all() == []


def test_a_stale_button_of_a_removed_integration_is_refused_not_applied_to_its_successor(
    roleup, slack, slack_api, engine
):
    core = roleup.core
    old = add_integration(core, "prod", approvers=["UAPPROVER"])
    dev = add_integration(core, "dev", approvers=["UAPPROVER"])
    removal = submit_request(
        core, kind="remove_integration", integration_id=old, requester="UMANAGER", payload={}
    )
    across = submit_request(
        core,
        kind="offboard",
        integration_id=None,
        requester="UMANAGER",
        payload={
            "target": "<@UALICE>",
            "accounts": [
                {"integration_id": old, "user_name": "alice"},
                {"integration_id": dev, "user_name": "alice"},
            ],
        },
    )
    single = offboard_request(core, old, "prod")
    # Removed outside the requests (the CLI), then an integration of the same name added.
    integrations.remove_integration(core, "prod", actor="UADMIN")
    new = add_integration(core, "prod", approvers=["UAPPROVER"])
    assert new > old  # never the removed one's id, on SQLite too (AUTOINCREMENT)
    before = store_snapshot(engine)

    answers = {
        request.id: click(slack, slack_api, APPROVE_ACTION, request.id, "UAPPROVER", f"s{i}")
        for i, request in enumerate((removal, across, single))
    }
    stale = "Integration prod was removed since this was asked: make a new request."
    assert answers == {
        removal.id: stale,
        across.id: stale,
        single.id: "That request no longer exists.",  # went with its integration
    }
    assert store_snapshot(engine) == before
    assert approvals.load(core, removal.id).state == approvals.PENDING
    with core.sessions() as session:
        assert session.get_one(Integration, new).name == "prod"
