"""An access review end to end on real `roleup serve` processes (two over one PostgreSQL; one with
two workers over SQLite), the moto server behind a recording proxy, and really signed Slack
requests: `/roleup review start` over 20 accounts reads the credential report in one round trip;
two managers decide every item through their App Home (Keep's modal, the Remove-from-group
modal, Offboard, the Next 10 button); a reviewer is refused on their own account; two reviewers
keeping one item at once decide it once; Offboard raises an approval an approver approves with a
click and the account is gone from AWS; `roleup review export` (CSV and JSON lines) matches
every decision."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import threading
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.review_notices import REVIEW_OPEN_ACTION
from bot.slack.review_blocks import KEEP_ACTION, OFFBOARD_ACTION, PAGE_ACTION, REMOVE_ACTION
from storage.models import AuditEvent, Integration, Request, ReviewItem
from tests.e2e.cluster import Cluster
from tests.e2e.instances import add_integration_with_own_user, syncs, wait_until
from tests.support.approvals import buttons, click, message_text, user_exists
from tests.support.modal import submission
from tests.support.sender import SlackSender
from tests.support.slack_api import FakeSlackApi

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("moto_gaps")]

FIRST, SECOND = "UMGRA0001", "UMGRB0002"  # the integration's two managers
APPROVER = "UAPPR0001"
CHANNEL = "CPROD"
PEOPLE = [f"user-{n:02d}" for n in range(20)]
PATIENCE = 60.0
_ids = itertools.count(1)
# Per-user reads a campaign must not make: the evidence comes from the credential report.
PER_USER = {
    "GetUser",
    "ListAccessKeys",
    "GetLoginProfile",
    "ListMFADevices",
    "GetAccessKeyLastUsed",
}


@pytest.fixture
def moto_gaps():
    from bot.demo.moto_gaps import fill_moto_gaps

    restore = fill_moto_gaps()
    yield
    restore()


@pytest.fixture
def prod(cluster: Cluster, aws) -> Cluster:
    """prod manages /people/: 20 accounts, all in devs, user-03 also in admins (privileged), a
    console password on the even ones; user-00 is FIRST's own account, user-01 SECOND's."""
    aws.create_group(GroupName="devs")
    aws.create_group(GroupName="admins")
    for n, name in enumerate(PEOPLE):
        aws.create_user(UserName=name, Path="/people/")
        aws.add_user_to_group(GroupName="devs", UserName=name)
        if n % 2 == 0:
            aws.create_login_profile(UserName=name, Password="Sup3r-Secret-Pass!")
    aws.add_user_to_group(GroupName="admins", UserName="user-03")
    aws.create_access_key(UserName="user-02")
    add_integration_with_own_user(cluster.engine, aws, "prod", every=4)
    with cluster.engine.begin() as conn:
        conn.execute(
            update(Integration).values(
                path_prefix="/people/",
                managers=[FIRST, SECOND],
                approvers=[APPROVER],
                privileged_groups=["admins"],
            )
        )
    wait_until(lambda: _synced(cluster), timeout=PATIENCE)
    with cluster.engine.begin() as conn:
        # Linked as `/roleup link` would; no more scheduled syncs while the review runs.
        from storage.models import Account

        for name, person in (("user-00", FIRST), ("user-01", SECOND)):
            conn.execute(
                update(Account).where(Account.user_name == name).values(slack_user_id=person)
            )
        conn.execute(update(Integration).values(sync_interval_minutes=100_000))
    return cluster


def _synced(cluster: Cluster) -> bool:
    from storage.models import Account

    if "ok" not in syncs(cluster.engine, "prod"):
        return False
    with cluster.engine.connect() as conn:
        return len(conn.scalars(select(Account.user_name)).all()) == len(PEOPLE)


# --- one reviewer's Slack -------------------------------------------------------------------
class Reviewer:
    """A manager clicking in RoleUp's App Home, on one of the processes."""

    def __init__(self, user: str, slack: SlackSender, slack_api: FakeSlackApi) -> None:
        self.user, self.slack, self.api = user, slack, slack_api

    def publishes(self) -> list[Any]:
        return [c for c in self.api.calls_to("views.publish") if c.params["user_id"] == self.user]

    def home(self) -> dict[str, Any]:
        return _json(self.publishes()[-1].params["view"])

    def next_publish(self, act) -> dict[str, Any]:
        """Do `act`, then wait for the App Home it republishes."""
        before = len(self.publishes())
        act()
        self.api.wait_for(
            "views.publish",
            count=before + 1,
            where=lambda c: c.params["user_id"] == self.user,
            timeout=PATIENCE,
        )
        return self.home()

    def open_home(self) -> dict[str, Any]:
        event = {
            "token": "legacy-unused",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "type": "event_callback",
            "event_id": f"Ev{self.user}{next(_ids)}",
            "event_time": 1700000000,
            "event": {
                "type": "app_home_opened",
                "user": self.user,
                "channel": f"D{self.user}",
                "tab": "home",
                "event_ts": "1700000000.000100",
            },
        }

        def send() -> None:
            reply = self.slack.post(json.dumps(event), content_type="application/json")
            assert reply.status_code == 200

        return self.next_publish(send)

    def press(self, action_id: str, value: str) -> str:
        """A click on a button of the App Home; returns the click's trigger id."""
        trigger = f"{next(_ids)}.{self.user}.trigger"
        payload = {
            "type": "block_actions",
            "team": {"id": "T0001", "domain": "roleup-test"},
            "user": {"id": self.user, "username": self.user.lower(), "team_id": "T0001"},
            "api_app_id": "A0001",
            "token": "legacy-unused",
            "trigger_id": trigger,
            "container": {"type": "view", "view_id": f"VHOME{self.user}"},
            "view": {"id": f"VHOME{self.user}", "type": "home", "blocks": []},
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": f"review_item_{value}",
                    "value": value,
                    "action_ts": "1.2",
                }
            ],
        }
        assert self.slack.interact(payload).status_code == 200
        return trigger

    def modal(self, trigger: str) -> dict[str, Any]:
        (opened,) = self.api.wait_for(
            "views.open", where=lambda c: c.params.get("trigger_id") == trigger, timeout=PATIENCE
        )
        return _json(opened.params["view"])

    def find(self, name: str) -> str:
        """The item id of `name` on the App Home, paging with *Next 10* when it is further."""
        view = self.home()
        while True:
            found = items_of(view)
            if name in found:
                return found[name]
            paging = [b for b in view["blocks"] if b.get("block_id") == "review_paging"]
            nexts = [e for b in paging for e in b["elements"] if e["text"]["text"] == "Next 10"]
            assert nexts, f"{name} is not on {self.user}'s App Home"
            view = self.next_publish(lambda v=nexts[0]["value"]: self.press(PAGE_ACTION, v))

    def keep(self, name: str, note: str = "") -> None:
        modal = self.modal(self.press(KEEP_ACTION, self.find(name)))
        assert modal["title"]["text"] == "Keep access" and f"*{name}*" in json.dumps(modal)
        values = {"note": {"value": {"type": "plain_text_input", "value": note or None}}}

        def submit() -> None:
            reply = self.slack.interact(submission(modal, values, self.user))
            assert reply.status_code == 200 and reply.text in ("", "null"), reply.text

        self.next_publish(submit)

    def remove(self, name: str, group: str) -> None:
        modal = self.modal(self.press(REMOVE_ACTION, self.find(name)))
        assert modal["title"]["text"] == "Remove from group"
        listed = [
            o["value"] for b in modal["blocks"] for o in b.get("element", {}).get("options", [])
        ]
        assert listed == ["admins", "devs"]
        chosen = {
            "groups": {"value": {"type": "checkboxes", "selected_options": [{"value": group}]}}
        }

        def submit() -> None:
            reply = self.slack.interact(submission(modal, chosen, self.user))
            assert reply.json()["response_action"] == "update"

        self.next_publish(submit)
        self.api.wait_for(
            "views.update",
            where=lambda c: f"Asked to remove {name} from {group}" in json.dumps(c.params),
            timeout=PATIENCE,
        )

    def offboard(self, name: str) -> None:
        self.next_publish(lambda: self.press(OFFBOARD_ACTION, self.find(name)))

    def dms(self) -> list[str]:
        return [
            str(c.params.get("text"))
            for c in self.api.calls_to("chat.postMessage")
            if c.params["channel"] == self.user
        ]


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


ITEM = re.compile(r"^\*([^*]+)\* in \*prod\*")


def items_of(view: dict[str, Any]) -> dict[str, str]:
    """{account: item id} of the App Home's review items, in the order shown."""
    found, blocks = {}, view["blocks"]
    for section, actions in itertools.pairwise(blocks):
        if str(actions.get("block_id", "")).startswith("review_item_"):
            name = ITEM.match(section["text"]["text"])
            assert name, section
            found[name.group(1)] = actions["elements"][0]["value"]
    return found


# --- the test -----------------------------------------------------------------------------
def test_a_review_over_twenty_accounts_decided_in_the_app_home_by_two_managers(
    prod, slack_api, aws, cli, monkeypatch
):
    cluster = prod
    first = Reviewer(FIRST, cluster.senders[0], slack_api)
    second = Reviewer(SECOND, cluster.senders[1], slack_api)
    wire_before = len(cluster.wire.calls)

    assert cluster.senders[0].command("/roleup", "review start prod 7", user_id=FIRST).ok
    (reply,) = slack_api.wait_for("response_url:/respond/cmd", timeout=PATIENCE)
    assert "Access review #1 of *prod* started: 20 accounts (20 flagged)" in reply.params["text"]

    # The evidence came from one credential report: moto's new report says STARTED once, then
    # COMPLETE; one GetCredentialReport; no call per user.
    made = [c.action for c in cluster.wire.calls[wire_before:]]
    assert made.count("GenerateCredentialReport") == 2
    assert made.count("GetCredentialReport") == 1
    assert not PER_USER & set(made)

    # Each manager is told, with a Review button; their own account is not theirs to review.
    for reviewer in (first, second):
        slack_api.wait_for(
            "chat.postMessage",
            where=lambda c, r=reviewer: c.params["channel"] == r.user,
            timeout=PATIENCE,
        )
        (dm,) = reviewer.dms()
        assert "19 accounts for you to review" in dm
    (told,) = [c for c in slack_api.calls_to("chat.postMessage") if c.params["channel"] == FIRST]
    assert buttons(told)["Review"]["action_id"] == REVIEW_OPEN_ACTION

    home = first.open_home()
    assert "19 accounts wait for your review (showing 1 to 10, flagged first)" in json.dumps(home)
    assert len(items_of(home)) == 10 and "user-00" not in items_of(home)
    second.open_home()

    # FIRST clicks Offboard on his own account (a stale button): refused in one sentence.
    own = second.find("user-00")
    first.press(OFFBOARD_ACTION, own)
    slack_api.wait_for(
        "chat.postMessage",
        where=lambda c: c.params["channel"] == FIRST and "linked to you" in c.params["text"],
        timeout=PATIENCE,
    )
    assert first.dms()[-1] == (
        ":no_entry: That account is linked to you, so another reviewer decides it."
    )

    # FIRST decides ten; SECOND decides the rest but one, which both keep at the same moment.
    decided: dict[str, tuple[str, str]] = {}
    first.offboard("user-02")
    decided["user-02"] = ("offboard", FIRST)
    first.keep("user-01", note='=HYPERLINK("https://evil.example")')
    decided["user-01"] = ("keep", FIRST)
    for name in PEOPLE[4:12]:
        first.keep(name, note=f"{name} still works here")
        decided[name] = ("keep", FIRST)
    second.remove("user-03", "admins")
    decided["user-03"] = ("remove", SECOND)
    for name in ["user-00", *PEOPLE[12:19]]:
        second.keep(name)
        decided[name] = ("keep", SECOND)

    winner = both_keep_at_once(first, second, "user-19")
    decided["user-19"] = ("keep", winner)
    assert len(decided) == 20
    for reviewer in (first, second):  # nothing left to review
        assert "Access reviews" not in json.dumps(reviewer.open_home())

    # The offboarding waits for the approver, who approves it with a click; AWS loses the user.
    (approval,) = slack_api.wait_for(
        "chat.postMessage",
        where=lambda c: c.params["channel"] == CHANNEL and "Offboarding request" in message_text(c),
        timeout=PATIENCE,
    )
    assert "Access review #1: offboard" in message_text(approval)
    request_id = str(buttons(approval)["Approve"]["value"])
    click(cluster.senders[1], "approval_approve", request_id, user=APPROVER, channel=CHANNEL)
    wait_until(lambda: state_of(cluster, request_id) == "done", timeout=PATIENCE)
    assert not user_exists(aws, "user-02")
    assert sorted(
        g["GroupName"] for g in aws.list_groups_for_user(UserName="user-03")["Groups"]
    ) == [
        "admins",
        "devs",
    ]  # the removal waits for an approver like any other

    # The store: each item decided once, as clicked.
    with cluster.engine.connect() as conn:
        rows = conn.execute(select(ReviewItem)).all()
        events = conn.scalars(
            select(AuditEvent.target).where(AuditEvent.action == "review.decided")
        ).all()
    assert {r.user_name: (r.decision, r.decided_by) for r in rows} == decided
    assert sorted(events) == sorted(PEOPLE)

    # The evidence export, as an auditor runs it against the same store.
    monkeypatch.setenv("DATABASE_URL", cluster.instances[0].env["DATABASE_URL"])
    csv_run = cli("review", "export", "1", "--format", "csv")
    jsonl_run = cli("review", "export", "1", "--format", "jsonl")
    assert csv_run.code == jsonl_run.code == 0, csv_run.err + jsonl_run.err
    table = {row["account"]: row for row in csv.DictReader(io.StringIO(csv_run.out))}
    lines = {row["account"]: row for row in map(json.loads, jsonl_run.out.splitlines())}
    assert set(table) == set(lines) == set(PEOPLE)
    for name, (decision, by) in decided.items():
        assert (table[name]["decision"], table[name]["decided_by"]) == (decision, by), name
        assert (lines[name]["decision"], lines[name]["decided_by"]) == (decision, by), name
        assert lines[name]["decided_at"] and table[name]["decided_at"] == lines[name]["decided_at"]
    assert (lines["user-02"]["request_id"], lines["user-02"]["request_state"]) == (
        request_id,
        "done",
    )
    assert table["user-02"]["request_state"] == "done"
    assert lines["user-03"]["removed_groups"] == ["admins"]
    assert lines["user-03"]["request_state"] == table["user-03"]["request_state"] == "pending"
    assert "privileged" in lines["user-03"]["flags"]
    assert lines["user-05"]["note"] == table["user-05"]["note"] == "user-05 still works here"
    # A formula-like note is data in JSON lines and never a formula in a spreadsheet.
    assert lines["user-01"]["note"] == '=HYPERLINK("https://evil.example")'
    assert table["user-01"]["note"] == '\'=HYPERLINK("https://evil.example")'
    assert lines["user-02"]["console_password"] is True and lines["user-03"]["mfa"] is False
    assert len(lines["user-02"]["access_keys"]) == 1


def both_keep_at_once(first: Reviewer, second: Reviewer, name: str) -> str:
    """Both managers submit Keep for the same item at the same moment, on different processes:
    one decides it, the other is told who did. Returns the winner."""
    modals = {}
    for reviewer in (first, second):
        modals[reviewer.user] = reviewer.modal(reviewer.press(KEEP_ACTION, reviewer.find(name)))
    barrier = threading.Barrier(2)
    answers: dict[str, Any] = {}

    def submit(reviewer: Reviewer) -> None:
        values = {"note": {"value": {"type": "plain_text_input", "value": None}}}
        body = submission(modals[reviewer.user], values, reviewer.user)
        barrier.wait()
        answers[reviewer.user] = reviewer.slack.interact(body)

    threads = [threading.Thread(target=submit, args=(r,)) for r in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused = [u for u, a in answers.items() if a.text not in ("", "null")]
    assert len(refused) == 1, {u: a.text for u, a in answers.items()}
    (winner,) = set(answers) - set(refused)
    said = answers[refused[0]].json()
    assert said["response_action"] == "update"
    assert f"{name} was already decided: keep by &lt;@{winner}&gt;" in json.dumps(said)
    return winner


def state_of(cluster: Cluster, request_id: str) -> str:
    with cluster.engine.connect() as conn:
        return str(conn.scalar(select(Request.state).where(Request.id == request_id)))
