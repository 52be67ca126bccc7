"""/accounts end to end: signed commands into the live app, answers read from the Slack stand-in."""

from __future__ import annotations

from functools import partial

from tests.support import seed
from tests.support.seed import (
    ADMIN,
    APPROVER,
    MANAGER,
    STRANGER,
    add_account,
)
from tests.support.slack_answers import RESPOND, _answer, _click, _text, _texts  # noqa: F401

# The handler tests' integrations: synced, without a key.
add_integration = partial(seed.add_integration, key=None, **seed.SYNCED)


def test_manager_sees_accounts_groups_and_links(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev", "ops"), slack_user_id="UALICE")
    add_account(roleup.core.sessions, prod, "bob")
    response = slack.command("/accounts", "prod", user_id=MANAGER)
    assert response.status_code == 200
    message = _answer(slack_api)
    assert message["response_type"] == "ephemeral"
    text = _text(message)
    assert "*alice*" in text and "`dev`" in text and "`ops`" in text and "<@UALICE>" in text
    assert "*bob*" in text and "_not linked_" in text
    assert "prod synced <!date^" in text
    buttons = [e["text"]["text"] for e in message["blocks"][-1]["elements"]]
    assert buttons == ["Refresh"]


def test_filter_matches_username_or_group(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))
    add_account(roleup.core.sessions, prod, "bob", ("ops",))
    add_account(roleup.core.sessions, prod, "carol_ops")
    slack.command("/accounts", "prod ops", user_id=APPROVER)
    text = _text(_answer(slack_api))
    assert "*bob*" in text and "carol_ops" in text and "alice" not in text


def test_paging_with_previous_and_next_inside_block_limits(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    for i in range(45):
        add_account(roleup.core.sessions, prod, f"user{i:02d}", ("g",))
    slack.command("/accounts", "", user_id=ADMIN)
    first = _answer(slack_api)
    assert len(first["blocks"]) <= 50
    nav = first["blocks"][-1]["elements"]
    assert [b["text"]["text"] for b in nav] == ["Refresh", "Next"]
    assert "page 1 of 3" in _text(first)
    next_button = nav[1]
    slack.interact(_click(next_button, ADMIN, slack_api.response_url_base + "cmd"))
    second = _answer(slack_api, 2)
    assert second["replace_original"] is True
    assert "user20" in _text(second) and "user00" not in _text(second)
    assert [b["text"]["text"] for b in second["blocks"][-1]["elements"]] == [
        "Refresh",
        "Previous",
        "Next",
    ]


def test_stranger_is_refused_and_told_who_can_help(slack, slack_api, roleup):
    add_integration(roleup.core.sessions)
    slack.command("/accounts", "prod", user_id=STRANGER)
    text = _answer(slack_api)["text"]
    assert "can't list accounts" in text and f"<@{MANAGER}>" in text


def test_no_integrations_yet_says_how_to_add_one(slack, slack_api, roleup):
    slack.command("/accounts", "", user_id=ADMIN)
    assert "/roleup integration add" in _answer(slack_api)["text"]


def test_injection_in_names_and_filters_is_escaped(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    # IAM names cannot hold < or >, but groups synced from elsewhere and filters can be anything.
    add_account(roleup.core.sessions, prod, "eve", ("<!channel>",))
    slack.command("/accounts", "prod <!channel>", user_id=MANAGER)
    text = _text(_answer(slack_api))
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    slack_api.reset()
    slack.command("/accounts", "<https://evil.example|bank>", user_id=MANAGER)
    text = _text(_answer(slack_api))
    assert "<https://evil" not in text


def test_malformed_input_gets_a_usage_line_in_the_ack(slack, slack_api, roleup):
    for text in ["a b c", "x" * 10_000, '"unclosed', "\x00\x01\x02 a b c"]:
        response = slack.command("/accounts", text, user_id=MANAGER)
        assert response.status_code == 200
        assert "Usage: `/accounts" in response.json()["text"]
        assert response.json()["response_type"] == "ephemeral"
    assert slack_api.calls_to(RESPOND) == []


def test_unknown_integration_with_a_filter_is_a_usage_error(slack, slack_api, roleup):
    add_integration(roleup.core.sessions)
    slack.command("/accounts", "nope alice", user_id=MANAGER)
    assert "no integration" in _answer(slack_api)["text"]


def test_a_slack_guest_listed_as_manager_sees_no_accounts(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice", ("dev",))
    slack_api.overrides["users.info"] = lambda call: {
        "ok": True,
        "user": {"id": call.params["user"], "is_restricted": True, "deleted": False},
    }
    for text in ("", "prod"):  # every integration, or one named
        slack.command("/accounts", text, user_id=MANAGER)
    for message in (_answer(slack_api, 1), _answer(slack_api, 2)):
        assert "Slack guests can't use RoleUp." in _text(message)
        assert "alice" not in _text(message)


def test_a_filter_with_like_wildcards_matches_them_literally(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "a_b")
    add_account(roleup.core.sessions, prod, "axb")
    add_account(roleup.core.sessions, prod, "c%d", ("team/x",))
    add_account(roleup.core.sessions, prod, "cxd", ("teamyx",))
    slack.command("/accounts", "prod a_b", user_id=MANAGER)
    slack.command("/accounts", "prod %", user_id=MANAGER)
    slack.command("/accounts", "prod m/x", user_id=MANAGER)
    underscore, percent, slash = (_text(_answer(slack_api, n)) for n in (1, 2, 3))
    assert "axb" not in underscore and "1 account matching" in underscore
    assert "1 account matching" in percent and "cxd" not in percent
    assert "1 account matching" in slash and "cxd" not in slash


def test_every_integration_is_listed_by_integration_then_user_with_its_name(
    slack, slack_api, roleup
):
    zeta = add_integration(roleup.core.sessions, "zeta", managers=[MANAGER])
    alpha = add_integration(roleup.core.sessions, "alpha", managers=[MANAGER])
    add_account(roleup.core.sessions, zeta, "aaron")
    add_account(roleup.core.sessions, alpha, "zoe", ("dev",))
    add_account(roleup.core.sessions, alpha, "bea")
    slack.command("/accounts", "", user_id=MANAGER)
    text = _text(_answer(slack_api))
    order = [
        text.index(f"*{name}* in {where}")
        for name, where in (("bea", "alpha"), ("zoe", "alpha"), ("aaron", "zeta"))
    ]
    assert order == sorted(order) and "3 accounts" in text and "`dev`" in text


def test_commands_do_not_ask_slack_who_the_caller_is_each_time(slack, slack_api, roleup):
    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice")
    for n in range(1, 4):
        slack.command("/accounts", "prod", user_id=MANAGER)
        assert "*alice*" in _text(_answer(slack_api, n))
    # One users.info for the caller's standing, kept for a minute (bot.slack.people).
    assert len(slack_api.calls_to("users.info")) == 1


def test_the_listing_is_made_after_the_ack_outside_the_listener_threads(
    slack, slack_api, roleup, monkeypatch
):
    import threading

    from handlers.accounts import command as accounts

    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice")
    threads: list[str] = []
    release = threading.Event()
    render = accounts.render_accounts

    def held(*args, **kwargs):
        threads.append(threading.current_thread().name)
        release.wait(30)
        return render(*args, **kwargs)

    monkeypatch.setattr(accounts, "render_accounts", held)
    # More commands than the listener pool has threads: every one is acknowledged while the
    # work of all of them waits.
    answers = [slack.command("/accounts", "prod", user_id=MANAGER) for _ in range(20)]
    release.set()
    assert [a.status_code for a in answers] == [200] * 20
    slack_api.wait_for(RESPOND, 20)
    assert threads and all(name.startswith("roleup-after-ack") for name in threads)


def test_each_listing_shows_the_store_as_another_process_left_it(
    slack, slack_api, roleup, database_url
):
    """Nothing of a listing is kept between commands: what another instance writes between
    two of them (a new account, a manager removed) shows in the next."""
    from storage.db import make_engine, make_sessionmaker
    from storage.models import Integration

    prod = add_integration(roleup.core.sessions)
    add_account(roleup.core.sessions, prod, "alice")
    slack.command("/accounts", "prod", user_id=MANAGER)
    assert "1 account" in _text(_answer(slack_api, 1))
    other = make_engine(database_url)  # its own engine and connections, as another process
    try:
        add_account(make_sessionmaker(other), prod, "bob", ("ops",))
        slack.command("/accounts", "prod", user_id=MANAGER)
        second = _text(_answer(slack_api, 2))
        assert "2 accounts" in second and "*bob*" in second and "`ops`" in second
        with make_sessionmaker(other).begin() as session:
            session.get_one(Integration, prod).managers = []
        slack.command("/accounts", "prod", user_id=MANAGER)
        third = _answer(slack_api, 3)["text"]
        assert "can't list accounts" in third and "bob" not in third
    finally:
        other.dispose()
