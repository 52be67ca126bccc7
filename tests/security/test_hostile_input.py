"""The hostile corpus against every slash command, the modals and the public invite page.

Each input gets a short answer in words (never a stack trace, never a ping or a link the input
smuggled in), and leaves IAM, the store and the audit log as they were: no AWS write, no row
changed outside the audit log, and no audit event but refusals.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
import requests
from sqlalchemy import select

from storage.models import AuditEvent
from tests.security.commands import declared_commands
from tests.security.corpus import HOSTILE_TEXTS, problems_in_reply
from tests.security.payloads import view_submission
from tests.security.snapshot import store_snapshot
from tests.support.approvals import add_integration, wait_until

_serial = itertools.count()


def without_audit(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {table: rows for table, rows in snapshot.items() if table != "audit_events"}


def audit_after(engine, before: int) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(AuditEvent.action, AuditEvent.outcome).where(AuditEvent.id > before)
        )
        return [tuple(r) for r in rows]


def last_audit_id(engine) -> int:
    with engine.connect() as conn:
        return max(conn.execute(select(AuditEvent.id)).scalars().all(), default=0)


def command_reply(slack, slack_api, command: str, text: str, user: str) -> str:
    """Send the command; return what the user was shown (ack, response_url post or modal)."""
    n = next(_serial)
    tag, trigger = f"hostile{n}", f"{n}.hostile.trigger"
    response = slack.command(
        command,
        text,
        user_id=user,
        trigger_id=trigger,
        response_url=slack_api.response_url_base + tag,
    )
    assert response.status_code == 200, (command, text[:40], response.status_code)
    if response.text.strip():
        return response.text

    def answers_it(call: Any) -> bool:
        return call.method == f"response_url:/respond/{tag}" or (
            call.method == "views.open" and call.params.get("trigger_id") == trigger
        )

    wait_until(lambda: any(answers_it(c) for c in list(slack_api.calls)))
    return json.dumps([c.params for c in list(slack_api.calls) if answers_it(c)])


def commands_under_test() -> list[tuple[str, str]]:
    """(command, prefix) for every command manifest.yml declares that has a listener on main
    (/groups and plain /onboard have none yet); /onboard's text goes to `invite`."""
    listening = {"/accounts", "/roleup", "/offboard", "/onboard"}
    return [
        (c, "invite " if c == "/onboard" else "") for c in declared_commands() if c in listening
    ]


@pytest.mark.parametrize(("command", "prefix"), commands_under_test(), ids=lambda v: v or "-")
def test_every_command_refuses_the_hostile_corpus_cleanly(
    roleup, slack, slack_api, engine, iam, aws_faults, command, prefix
):
    add_integration(roleup.core)
    before, audit_mark = store_snapshot(engine), last_audit_id(engine)
    failures = []
    for hostile in HOSTILE_TEXTS:
        for user in ("UMANAGER", "UADMIN", "USTRANGER"):
            reply = command_reply(slack, slack_api, command, prefix + hostile, user)
            for problem in problems_in_reply(reply, hostile):
                failures.append(f"{command} {user} {hostile[:30]!r}: {problem}")
    assert failures == []
    assert aws_faults.writes == []
    assert without_audit(store_snapshot(engine)) == without_audit(before)
    assert all(outcome != "ok" for _, outcome in audit_after(engine, audit_mark))


def integration_add_values(**fields: str) -> dict[str, Any]:
    values = {
        "name": "prod2",
        "access_key_id": "AKIAHOSTILETEST00001",
        "secret_access_key": "s" * 40,
    }
    values.update(fields)
    return {
        block: {"value": {"type": "plain_text_input", "value": value}}
        for block, value in values.items()
    }


INTEGRATION_ADD_CASES = {
    "missing everything": {},
    "missing secret": {
        k: v for k, v in integration_add_values().items() if k != "secret_access_key"
    },
    "oversized name": integration_add_values(name="p" * 10_000),
    "injected name": integration_add_values(name="<!channel>"),
    "confusable name": integration_add_values(name="pr\u043ed"),
    "bad key id": integration_add_values(access_key_id="AKIA\u0000" + "A" * 16),
    "oversized secret": integration_add_values(secret_access_key="s" * 10_000),
    "bad prefix": integration_add_values(path_prefix="../etc"),
    "bad interval": integration_add_values(sync_interval="-1"),
    "huge interval": integration_add_values(sync_interval="9" * 5000),
    "extra fields": {
        **integration_add_values(name="bad name!"),
        "admin": {"value": {"type": "plain_text_input", "value": "UEVIL"}},
        "read_only": {"value": {"type": "plain_text_input", "value": "false"}},
    },
}


@pytest.mark.parametrize("case", sorted(INTEGRATION_ADD_CASES))
def test_integration_add_modal_refuses_bad_submissions_next_to_a_field(
    roleup, slack, slack_api, engine, iam, aws_faults, case
):
    before = store_snapshot(engine)
    payload = view_submission("integration_add", INTEGRATION_ADD_CASES[case], user_id="UADMIN")
    response = slack.interact(payload)
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_action"] == "errors", answer
    for message in answer["errors"].values():
        assert problems_in_reply(message, json.dumps(INTEGRATION_ADD_CASES[case])) == []
        assert 0 < len(message) <= 200
    assert aws_faults.names == []
    assert store_snapshot(engine) == before


def test_integration_add_by_a_non_admin_is_refused(roleup, slack, engine, iam, aws_faults):
    before = store_snapshot(engine)
    payload = view_submission("integration_add", integration_add_values(), user_id="UMANAGER")
    answer = slack.interact(payload).json()
    assert answer["response_action"] == "errors"
    assert "admins" in json.dumps(answer["errors"])
    assert aws_faults.names == []
    assert store_snapshot(engine) == before


INVITE_ANSWER_CASES = {
    "no metadata": "",
    "not json": "{{{",
    "unknown invite": json.dumps({"invite_id": 999999}),
    "injected": json.dumps({"invite_id": "1 OR 1=1"}),
    "huge": json.dumps({"invite_id": "9" * 5000}),
}


@pytest.mark.parametrize("case", sorted(INVITE_ANSWER_CASES))
def test_invite_answer_modal_with_tampered_metadata_changes_nothing(
    roleup, slack, slack_api, engine, iam, aws_faults, case
):
    before = store_snapshot(engine)
    values = {
        "username": {"value": {"type": "plain_text_input", "value": "newbie"}},
        "password": {"value": {"type": "plain_text_input", "value": "Good-Passw0rd!!"}},
        "confirm": {"value": {"type": "plain_text_input", "value": "Good-Passw0rd!!"}},
    }
    payload = view_submission(
        "invite_answer", values, user_id="UNEWBIE", private_metadata=INVITE_ANSWER_CASES[case]
    )
    response = slack.interact(payload)
    assert response.status_code == 200
    shown = response.text + slack_api.all_text()
    assert problems_in_reply(shown, "") == []
    assert aws_faults.writes == []
    assert without_audit(store_snapshot(engine)) == without_audit(before)


HOSTILE_TOKENS = [
    "x",
    "a" * 10_000,
    "..%2F..%2Fetc%2Fpasswd",
    "%00",
    "\u0430" * 43,
    "<script>alert(1)</script>",
    "' OR '1'='1",
]


@pytest.mark.parametrize("token", HOSTILE_TOKENS, ids=lambda t: repr(t[:16]))
def test_invite_page_refuses_hostile_tokens_plainly(live, roleup, engine, token):
    before = store_snapshot(engine)
    url = f"{live.url}/invite/{token}"
    for response in (
        requests.get(url, timeout=20),
        requests.post(url, data={"username": "x", "password": "y"}, timeout=20),
    ):
        assert response.status_code in (404, 410, 414), response.status_code
        assert "Traceback" not in response.text
        assert "<script>alert" not in response.text
    assert store_snapshot(engine) == before


def test_invite_page_refuses_oversized_and_forged_forms(live, roleup, engine, iam):
    from tests.support.invite_kit import make_invite
    from tests.support.seed import add_integration as add_invite_integration

    invite = make_invite(roleup.core, add_invite_integration(roleup.core))
    url = f"{live.url}/invite/{invite.token}"
    before = store_snapshot(engine)
    huge = requests.post(url, data={"username": "u" * 200_000}, timeout=20)
    assert huge.status_code == 413
    forged = requests.post(
        url,
        data={"csrf_token": "0" * 64, "username": "newbie", "password": "P", "confirm": "P"},
        timeout=20,
    )
    assert forged.status_code == 400
    assert "Nothing was changed" in forged.text
    assert store_snapshot(engine) == before


def test_the_reply_checker_catches_what_it_looks_for():
    assert problems_in_reply("hi <!channel>", "<!channel>") == ["injected '<!channel>'"]
    assert problems_in_reply("Traceback (most recent call last)", "") != []
    assert problems_in_reply("a\u202eb", "") == ["control character"]
    assert problems_in_reply("&lt;!channel&gt;", "<!channel>") == []
