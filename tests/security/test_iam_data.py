"""IAM data is untrusted input: whatever IAM (or whoever answers in its place) returns within
IAM's own limits and past them, the sync succeeds on both stores, every value it did not store
as read is reported, and nothing live reaches Slack through /accounts or the drift digest.

Real moto holds what it accepts (names and tags at their maximum lengths, unicode, `<!channel>`,
bidi overrides, 300-character tags); what moto cannot carry (control characters break its XML,
names past IAM's limits) is added to the GetAccountAuthorizationDetails answer the sync reads.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from sqlalchemy import delete, select

from bot.notices import drift_digest
from bot.services.aws import AwsClients, seal_key_pair
from bot.services.listing import accounts_page
from bot.services.sync import sync_integration
from bot.slack.ids import USER as SLACK_USER_RE
from handlers.accounts.messages import AccountsQuery, build
from storage.models import Account, Integration

LINK = "roleup:slack-user"
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@_-"
PATH_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "/")
HOSTILE = [
    "<!channel>",
    "<!here|here>",
    "<@U0ALICE>",
    "<https://evil.example|bank>",
    "\u202eevil\u202c",
    "\u2066x\u2069",
    "&lt;&amp;",
    "*bold* _it_ `code` ~s~",
    "x" * 300,
]
LINKS = ["U0ALICE", "W0BOB12", "<!channel>", "<@U123>", "U" + "A" * 40, "\u202eU0X", "", "u0x"]
# XML 1.0 cannot carry these, so moto cannot either: they come through the injected answer.
XML_SAFE = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
# The test's own list of what must never be shown (not the product's, so weakening it fails here).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
ALLOWED_TOKENS = re.compile(rf"<@{SLACK_USER_RE.pattern}>|<!date\^\d+\^[^|<>]*\|[^<>]*>")
names = itertools.count()

users = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.one_of(st.text(NAME_CHARS, min_size=1, max_size=63), st.just("n" * 64)),
            "path": st.lists(st.text(PATH_CHARS, min_size=1, max_size=40), max_size=3).map(
                lambda parts: "/" + "".join(p + "/" for p in parts)
            ),
            "link": st.one_of(st.none(), st.sampled_from(LINKS)),
            "note": st.one_of(st.sampled_from(HOSTILE), st.text(XML_SAFE, max_size=300)),
        }
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda u: u["name"].lower(),
)
GAAD_EXTRAS = [
    {"UserName": "bell\x07name", "UserId": "AIDAX1", "Arn": "arn:aws:iam::1:user/x", "Path": "/"},
    {"UserName": "q" * 65, "UserId": "AIDAX2", "Arn": "arn:aws:iam::1:user/q", "Path": "/"},
    {
        "UserName": "ctl",
        "UserId": "AIDAX3",
        "Arn": "arn:aws:iam::123456789012:user/ctl",
        "Path": "/",
        "Tags": [
            {"Key": "note", "Value": "\x00\x1b[31m\u202e<!channel>\x7f"},
            {"Key": LINK, "Value": "U0\x00EVIL"},
        ],
        "GroupList": ["<!here>", "\u202egroup"],
    },
]
EXTRA_PROBLEMS = {
    ("bell\x07name", "user skipped: its name is not one IAM allows"),
    ("q" * 65, "user skipped: its name is not one IAM allows"),
    ("ctl", "unreadable link tag ignored"),
    ("ctl", "group ignored: not a name IAM allows"),
}


@pytest.fixture
def injecting(monkeypatch: pytest.MonkeyPatch) -> None:
    original = AwsClients._client

    def client(self: AwsClients, *args: Any, **kwargs: Any) -> Any:
        made = original(self, *args, **kwargs)

        def add(parsed: dict[str, Any], **_: Any) -> None:
            parsed["UserDetailList"] += [dict(u) for u in GAAD_EXTRAS]

        # Once: the clients core.aws makes may share one botocore client.
        made.meta.events.register(
            "after-call.iam.GetAccountAuthorizationDetails", add, unique_id="gaad-extras"
        )
        return made

    monkeypatch.setattr(AwsClients, "_client", client)


def expected_problems(generated: list[dict[str, Any]]) -> set[tuple[str, str]]:
    found = set(EXTRA_PROBLEMS)
    for user in generated:
        if user["link"] is not None and not SLACK_USER_RE.fullmatch(user["link"]):
            found.add((user["name"], "unreadable link tag ignored"))
        if len(user["note"]) > 256:
            found.add((user["name"], "tag value cut to 256 characters"))
    return found


def texts(message: Any) -> list[str]:
    """Every string of a Slack message (text, block texts, button labels and values)."""
    if isinstance(message, str):
        return [message]
    if isinstance(message, dict):
        return [t for value in message.values() for t in texts(value)]
    if isinstance(message, list):
        return [t for value in message for t in texts(value)]
    return []


def assert_nothing_live(message: Any, linked: set[str]) -> None:
    for text in texts(message):
        assert not CONTROL.search(text), text
        for token in ALLOWED_TOKENS.findall(text):
            assert not token.startswith("<@") or token[2:-1] in linked, token
        assert "<" not in ALLOWED_TOKENS.sub("", text), text


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(generated=users)
def test_hostile_iam_data_syncs_is_reported_and_reaches_slack_escaped(core, injecting, generated):
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        for user in generated:
            tags = [{"Key": "note", "Value": user["note"]}]
            if user["link"] is not None:
                tags.append({"Key": LINK, "Value": user["link"]})
            iam.create_user(UserName=user["name"], Path=user["path"], Tags=tags)
        with core.sessions.begin() as session:
            row = Integration(
                name=f"hostile{next(names)}",
                created_by="UADMIN",
                access_key_hint="AKIA…TEST",
                credentials_ciphertext=seal_key_pair(core.require_box(), "AKIATESTTEST", "x" * 40),
            )
            session.add(row)
            session.flush()
            integration = row
        try:
            report = sync_integration(core, integration.id, actor="UADMIN")
            assert {(p.subject, p.what) for p in report.problems} == expected_problems(generated)
            with core.sessions() as session:
                stored = {
                    a.user_name: a
                    for a in session.scalars(
                        select(Account).where(Account.integration_id == integration.id)
                    )
                }
                assert session.get(Integration, integration.id).last_sync_status == "ok"
                page = accounts_page(session, [session.get_one(Integration, integration.id)])
            assert set(stored) == {u["name"] for u in generated} | {"ctl"}
            for user in generated:
                account = stored[user["name"]]
                valid = user["link"] if SLACK_USER_RE.fullmatch(user["link"] or "") else None
                assert account.slack_user_id == valid
                assert account.tags["note"] == user["note"][:256]
            assert stored["ctl"].slack_user_id is None and stored["ctl"].tags["note"]
            linked = {a.slack_user_id for a in stored.values() if a.slack_user_id}
            listing = build(page, AccountsQuery(None, "", 0))
            _, digest = drift_digest(integration.name, [], report.new_problems)
            assert_nothing_live(listing, linked)
            assert_nothing_live(digest, set())
            assert sum(t.count("\n• ") + t.startswith("• ") for t in texts(digest)) == len(
                report.new_problems
            )
        finally:
            with core.sessions.begin() as session:
                session.execute(delete(Integration).where(Integration.id == integration.id))


#: Every character with Unicode's Bidi_Control property: the marks (ALM, LRM, RLM) reorder
#: neighbouring text as the embeddings, overrides and isolates do.
BIDI_CONTROL = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def test_bidi_marks_in_iam_tags_never_reach_slack(core):
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        note = "\u200fdeploy\u061c-bot\u200e <!channel>"
        tags = [{"Key": "note", "Value": note}, {"Key": LINK, "Value": "\u200fU0ALICE"}]
        iam.create_user(UserName="marked", Path="/", Tags=tags)
        with core.sessions.begin() as session:
            row = Integration(
                name="marks",
                created_by="UADMIN",
                access_key_hint="AKIA…TEST",
                credentials_ciphertext=seal_key_pair(core.require_box(), "AKIATESTTEST", "x" * 40),
            )
            session.add(row)
            session.flush()
            integration_id = row.id
        report = sync_integration(core, integration_id, actor="UADMIN")
        assert [(p.subject, p.what) for p in report.problems] == [
            ("marked", "unreadable link tag ignored")
        ]
        with core.sessions() as session:
            page = accounts_page(session, [session.get_one(Integration, integration_id)])
        listing = build(page, AccountsQuery(None, "", 0))
        text, digest = drift_digest("marks", [], report.new_problems)
        shown = [*texts(listing), *texts(digest), text]
        assert any("U0ALICE" in t for t in shown)  # the reported value is shown...
        assert [t for t in shown if BIDI_CONTROL.search(t)] == []  # ...without its marks
