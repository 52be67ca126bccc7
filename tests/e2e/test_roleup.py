"""/roleup help | integrations | audit | unknown input, end to end."""

from __future__ import annotations

from functools import partial

from bot.services import audit
from tests.support import seed
from tests.support.seed import ADMIN, APPROVER, MANAGER, STRANGER, add_account
from tests.support.slack_answers import RESPOND, _answer, _text

# The handler tests' integrations: synced, without a key.
add_integration = partial(seed.add_integration, key=None, **seed.SYNCED)


def test_help_answers_in_the_ack_listing_every_command(slack, slack_api):
    response = slack.command("/roleup", "help", user_id=STRANGER)
    body = response.json()
    assert body["response_type"] == "ephemeral"
    text = _text(body)
    for command in ["/onboard", "/offboard", "/accounts", "/groups", "integration add", "audit"]:
        assert command in text
    assert slack.command("/roleup", "", user_id=STRANGER).json()["text"] == body["text"]
    # Placeholders are escaped, or Slack would read `<iam-username | @user>` as a link.
    assert "&lt;iam-username" in text
    assert "<iam-username" not in text


def test_unknown_and_hostile_subcommands_get_the_usage_line(slack, slack_api):
    for text in ["bogus", "<!channel>", "x" * 10_000, "\x00\x1b[31m", "audit -1", "link x"]:
        body = slack.command("/roleup", text, user_id=MANAGER).json()
        assert "Usage: `/roleup" in body["text"], text
        assert "<!channel>" not in body["text"]
        assert len(body["text"]) < 500
    assert slack_api.calls_to(RESPOND) == []


def test_admin_reads_the_latest_audit_events_escaped(slack, slack_api, roleup):
    with roleup.core.sessions.begin() as session:
        for i in range(3):
            audit.record(session, actor="UMANAGER", action="onboard", target=f"user{i}")
        audit.record(session, actor="UMANAGER", action="onboard", target="<!channel>")
    slack.command("/roleup", "audit 2", user_id=ADMIN)
    text = _text(_answer(slack_api))
    assert "Audit: latest 2" in text
    assert "&lt;!channel&gt;" in text and "user2" in text and "user1" not in text
    assert "<!channel>" not in text


def test_non_admin_cannot_read_the_audit_and_is_told_who_can(slack, slack_api, roleup):
    slack.command("/roleup", "audit", user_id=MANAGER)
    text = _answer(slack_api)["text"]
    assert "can't read the audit log" in text and f"<@{ADMIN}>" in text


def test_integrations_list_health_and_last_sync_for_people_with_a_role(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions, health_status="ok")
    add_integration(roleup.core.sessions, "other", managers=["USOMEONE"], approvers=[])
    add_account(roleup.core.sessions, prod, "alice")
    slack.command("/roleup", "integrations", user_id=MANAGER)
    text = _text(_answer(slack_api))
    assert "*prod*" in text and "123456789012" in text and "Health: ok" in text
    assert "1 account" in text and "<!date^" in text
    assert "other" not in text  # not one of theirs
    slack_api.reset()
    slack.command("/roleup", "integrations", user_id=ADMIN)
    text = _text(_answer(slack_api))
    assert "*prod*" in text and "*other*" in text
    slack_api.reset()
    slack.command("/roleup", "integrations", user_id=STRANGER)
    assert "can't list integrations" in _answer(slack_api)["text"]
    slack_api.reset()
    slack.command("/roleup", "integrations", user_id=APPROVER)
    assert "can't list integrations" in _answer(slack_api)["text"]
