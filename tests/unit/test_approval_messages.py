"""Rendering of approval messages: plain labels, escaped user text, within Block Kit limits."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.slack.approval_messages import (
    APPROVE_ACTION,
    DENY_ACTION,
    RETRY_ACTION,
    render,
    requester_text,
    submitted_text,
)
from storage.models import Request, utcnow


def request(**overrides) -> Request:
    now = utcnow()
    values = {
        "id": "0f0e0d0c-0b0a-4000-8000-000000000001",
        "kind": "offboard",
        "requester": "UMANAGER",
        "state": "pending",
        "created_at": now,
        "expires_at": now + timedelta(hours=24),
        "steps": [],
        "payload": {
            "target": "alice",
            "accounts": [
                {
                    "integration_id": 1,
                    "integration": "prod",
                    "user_name": "alice",
                    "plan": {
                        "items": [
                            {"kind": "login_profile", "name": "console password", "detail": ""},
                            {"kind": "access_key", "name": "AKIA1", "detail": "active, never used"},
                            {"kind": "group", "name": "devs", "detail": ""},
                        ]
                    },
                }
            ],
        },
        **overrides,
    }
    return Request(**values)


def all_buttons(blocks):
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_pending_shows_the_plan_and_approve_deny_with_the_request_id_only():
    text, blocks = render(request())
    shown = json.dumps(blocks)
    assert "Console password" in shown
    assert "Access key AKIA1 (active, never used)" in shown
    assert "Group membership devs" in shown
    buttons = all_buttons(blocks)
    assert [b["text"]["text"] for b in buttons] == ["Approve", "Deny"]
    assert [b["action_id"] for b in buttons] == [APPROVE_ACTION, DENY_ACTION]
    assert {b["value"] for b in buttons} == {"0f0e0d0c-0b0a-4000-8000-000000000001"}
    assert "Offboarding request" in text


def test_failed_shows_the_reason_and_retry():
    _, blocks = render(
        request(state="failed", decided_by="UAPPROVER", outcome="Offboarding stopped at X")
    )
    assert [b["action_id"] for b in all_buttons(blocks)] == [RETRY_ACTION]
    assert "Offboarding stopped at X" in json.dumps(blocks)


def test_done_and_denied_have_no_buttons():
    for state in ("done", "denied", "expired", "running"):
        _, blocks = render(request(state=state, decided_by="UAPPROVER"))
        assert all_buttons(blocks) == []


def test_the_checklist_marks_each_step():
    steps = [
        {"account": "prod/alice", "step": "deny_all", "status": "done"},
        {"account": "prod/alice", "step": "login_profile", "status": "running"},
    ]
    _, blocks = render(request(state="running", decided_by="UAPPROVER", steps=steps))
    shown = json.dumps(blocks)
    assert ":white_check_mark: " in shown and ":hourglass_flowing_sand: " in shown


def test_user_text_cannot_ping_or_fake_a_link():
    evil = "<!channel> <https://evil.example|bank> & co"
    payload = request().payload
    payload["accounts"][0]["user_name"] = evil
    payload["accounts"][0]["plan"]["items"].append({"kind": "group", "name": evil, "detail": ""})
    text, blocks = render(request(payload=payload))
    everything = text + json.dumps(blocks)
    assert "<!channel>" not in everything
    assert "<https://evil" not in everything
    assert "&lt;!channel&gt;" in everything
    told = requester_text(request(payload=payload, state="denied", decided_by="UX"), "denied")
    assert "<!channel>" not in told


def test_a_huge_plan_stays_within_block_kit_limits():
    items = [{"kind": "group", "name": f"group-{i:04d}" * 4, "detail": ""} for i in range(500)]
    accounts = [
        {"integration_id": 1, "integration": "prod", "user_name": f"u{i}", "plan": {"items": items}}
        for i in range(60)
    ]
    for state in ("pending", "failed"):
        _, blocks = render(
            request(
                payload={"target": "<@U1>", "accounts": accounts},
                state=state,
                steps=[],
                # A failed request had run, so it was approved (one failed while pending,
                # never approved, has no Retry to keep).
                decided_by="UAPPROVER" if state == "failed" else None,
            )
        )
        assert len(blocks) <= 50
        assert blocks[-1]["type"] == "actions"  # the buttons survive truncation
        assert "more (not shown)" in json.dumps(blocks)
        for block in blocks:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= 3000


def test_submitted_text_says_where_the_request_waits():
    in_channel = request(
        payload={**request().payload, "messages": [{"channel": "CAPP", "ts": "1"}]}
    )
    assert "Asked for approval in <#CAPP>" in submitted_text(in_channel)
    by_dm = request(payload={**request().payload, "messages": [{"channel": "DU1", "ts": "1"}]})
    assert "from the approvers by DM" in submitted_text(by_dm)
    lost = request()
    assert "could not be posted" in submitted_text(lost)
    assert lost.id in submitted_text(lost)
    done = request(state="done", outcome="Groups of <!here> changed.")
    assert submitted_text(done) == ":white_check_mark: Done: Groups of &lt;!here&gt; changed."


def test_an_invites_answer_names_who_created_the_invite_and_why_it_waits():
    _, blocks = render(
        request(
            kind="invite_onboard",
            requester="UNEWBIE",
            payload={
                "integration_id": 1,
                "integration": "prod",
                "username": "newbie",
                "groups": ["admins"],
                "invite_id": 7,
                "invite_creator": "UINVITER",
                "why": "privileged grant: admins",
            },
        )
    )
    shown = json.dumps(blocks)
    assert "*Invite created by:* <@UINVITER>" in shown
    assert "*Why an approver:* privileged grant: admins" in shown


def test_a_group_change_shows_the_diff_not_a_wanted_list():
    _, blocks = render(
        request(
            kind="set_groups",
            payload={
                "integration_id": 1,
                "integration": "prod",
                "user_name": "bob",
                "user_id": "AIDABOB",
                "added": ["billing"],
                "removed": ["admins"],
                "why": "removal from a group needs an approver",
            },
        )
    )
    shown = json.dumps(blocks)
    assert "*Add to:* billing" in shown and "*Remove from:* admins" in shown


def test_an_offboarding_says_that_assumed_role_sessions_outlive_it():
    _, blocks = render(request())
    assert "Sessions of roles the user assumed earlier last until they expire" in json.dumps(blocks)


def test_a_grant_for_a_while_shows_its_term_to_the_approver():
    from bot.services.grants import Term

    for kind, payload, shown in [
        ("set_groups", {"added": ["admins"], "removed": []}, "*Add to:* admins (for 4 hours)"),
        ("onboard", {"username": "bob", "groups": ["admins"]}, "*Groups:* admins (for 4 hours)"),
        ("extend_grant", {"group": "admins", "user_name": "bob"}, "*Group:* admins (for 4 hours)"),
    ]:
        row = request(
            kind=kind,
            payload={"integration": "prod", **payload, **Term(seconds=4 * 3600).dump()},
        )
        _text, blocks = render(row)
        assert shown in json.dumps(blocks, ensure_ascii=False)


def test_a_two_person_request_shows_who_approved_so_far():
    from storage.models import RequestApproval

    now = utcnow()
    _, blocks = render(request(approvals_required=2))
    assert "Waiting for 2 different approvers" in json.dumps(blocks)
    april = RequestApproval(approver="UAPRIL", decided_at=now)
    _, blocks = render(request(approvals_required=2, approvals=[april]))
    shown = json.dumps(blocks)
    assert "1 of 2 approvals: <@UAPRIL>" in shown
    assert {b["text"]["text"] for b in all_buttons(blocks)} == {"Approve", "Deny"}
    boris = RequestApproval(approver="UBORIS", decided_at=now)
    done = request(
        approvals_required=2, approvals=[april, boris], state="done", decided_by="UBORIS"
    )
    shown = json.dumps(render(done)[1], ensure_ascii=False)
    assert "approved by <@UAPRIL>, <@UBORIS> · 2 of 2 approvals" in shown
    denied = request(approvals_required=2, approvals=[april], state="denied", decided_by="UBORIS")
    assert "Denied by <@UBORIS>." in json.dumps(render(denied)[1])  # the denier, not April


def test_reason_and_ticket_are_escaped_and_only_an_https_ticket_is_a_link():
    hostile = "<!channel> <https://evil.example|bank> & *bold*"
    _, blocks = render(request(reason=hostile, ticket="https://jira.example.com/browse/SEC-1"))
    shown = json.dumps(blocks)
    assert "*Reason:* &lt;!channel&gt; &lt;https://evil.example|bank&gt; &amp; *bold*" in shown
    assert "<!channel>" not in shown and "<https://evil" not in shown
    link = "https://jira.example.com/browse/SEC-1"
    assert f"*Ticket:* <{link}|{link}>" in shown
    for ticket in ("SEC-1", "http://jira.example.com/SEC-1", "javascript:alert(1)"):
        shown = json.dumps(render(request(ticket=ticket))[1])
        assert f"*Ticket:* {ticket}" in shown  # text, never a link
