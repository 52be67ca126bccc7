"""The App Home tab is published when someone opens it (the manifest's only event)."""

from __future__ import annotations

import json

import pytest

from tests.support.home import home_opened


@pytest.fixture
def post_event(slack):
    def post(body: str):
        return slack.post(body, content_type="application/json")

    return post


def test_opening_the_home_tab_publishes_the_commands(post_event, slack_api):
    assert post_event(home_opened("UMSG", "messages")).status_code == 200
    assert post_event(home_opened("UHOME", "home")).status_code == 200
    (call,) = slack_api.wait_for("views.publish")
    assert call.params["user_id"] == "UHOME"
    view = call.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["type"] == "home"
    text = json.dumps(view)
    for command in ("/onboard", "/offboard", "/accounts", "/groups", "/roleup help"):
        assert command in text
    assert "&lt;iam-username" in text
    assert "<iam-username" not in text  # Slack would read an unescaped placeholder as a link
    assert all(c.params.get("user_id") != "UMSG" for c in slack_api.calls_to("views.publish"))


def test_managers_see_accounts_expiring_within_a_week_escaped(roleup, post_event, slack_api):
    from datetime import timedelta

    from storage.models import AccountExpiry, utcnow
    from tests.support.seed import add_integration

    core = roleup.core
    prod = add_integration(core)
    with core.sessions.begin() as session:
        for name, days in (("<!channel>", 3), ("later", 30)):
            session.add(
                AccountExpiry(
                    integration_id=prod,
                    user_name=name,
                    slack_user_id="UKARL001",
                    requester="UMANAGER",
                    expires_at=utcnow() + timedelta(days=days),
                    state="scheduled",
                )
            )
    day = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%d")
    post_event(home_opened("UMANAGER", "home"))
    (call,) = slack_api.wait_for("views.publish")
    text = json.dumps(call.params["view"])
    assert "Ending soon" in text
    assert f"Account *&lt;!channel&gt;* (<@UKARL001>) in *prod* expires {day}" in text
    assert "later" not in text and "<!channel>" not in text
    slack_api.reset()
    post_event(home_opened("USTRANGER", "home").replace("EvUSTRANGER", "EvU2"))
    (other,) = slack_api.wait_for("views.publish")
    assert "Ending soon" not in json.dumps(other.params["view"])
