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


@pytest.mark.postgresql_only  # SQLite has no server to end a connection
def test_a_home_opened_after_every_session_was_ended_unseen_is_read_again(
    roleup, post_event, slack_api, database_url, monkeypatch
):
    """A failover or an administrator ends every session, and the server's notice has not
    reached a pooled connection's socket when the App Home is read from it: the read fails
    there and, as it only reads, is read again on a new connection, so the home shows what
    the store holds rather than the commands alone."""
    from datetime import timedelta

    from sqlalchemy.exc import DBAPIError

    from bot.slack import home
    from storage import db
    from storage.models import AccountExpiry, utcnow
    from tests.support.ended_sessions import end_other_sessions, noting_failures
    from tests.support.seed import add_integration

    core = roleup.core
    prod = add_integration(core)
    with core.sessions.begin() as session:
        session.add(
            AccountExpiry(
                integration_id=prod,
                user_name="leaving",
                requester="UMANAGER",
                expires_at=utcnow() + timedelta(days=3),
                state="scheduled",
            )
        )
    post_event(home_opened("UMANAGER", "home"))  # a connection in the pool, as a busy process has
    (first,) = slack_api.wait_for("views.publish")
    assert "*leaving*" in json.dumps(first.params["view"])
    slack_api.reset()
    failed: list[DBAPIError] = []
    monkeypatch.setattr(home, "home_for", noting_failures(home.home_for, failed))
    # The home's read, not the delivery key's write after it, is what meets the ended connection.
    core.deliveries.flush()
    monkeypatch.setattr(core.deliveries, "interval", 60.0)
    monkeypatch.setattr(db, "_readable", lambda fd: False)  # the checkout sees nothing yet
    assert end_other_sessions(database_url)
    post_event(home_opened("UMANAGER", "home").replace("EvUMANAGER", "EvU2"))
    (again,) = slack_api.wait_for("views.publish")
    assert [exc.connection_invalidated for exc in failed] == [True]  # the race did happen
    assert "*leaving*" in json.dumps(again.params["view"])
