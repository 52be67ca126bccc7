"""Sync at the floor: the three lists in flight together, the store written by a fixed number of
bulk statements in one transaction, whatever the number of accounts.

Concurrency is shown by rendezvous, never by timing; bulk writes by counting the statements the
store is sent, never by timing."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, select

from bot.services.errors import AwsAccessDenied
from bot.services.sync import sync_integration
from storage.models import Account, AttachedPolicy, Group, ManagedPolicy, Membership
from tests.support.concurrency import Rendezvous
from tests.support.iam_users import POLICY_DOC
from tests.support.synced_accounts import stored

LISTS = ["GetAccountAuthorizationDetails", "ListUsers", "ListPolicies"]
WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\s+(?:INTO\s+|FROM\s+)?(\w+)", re.IGNORECASE)


def seed(iam, prefix: str, users: int) -> str:
    """`users` users under `prefix`, each in two groups with a managed policy."""
    arn = iam.create_policy(PolicyName=f"p{prefix.strip('/')}", PolicyDocument=POLICY_DOC)
    arn = arn["Policy"]["Arn"]
    existing = {g["GroupName"] for g in iam.list_groups()["Groups"]}
    for group in {"g1", "g2"} - existing:
        iam.create_group(GroupName=group)
    for n in range(users):
        name = f"{prefix.strip('/')}-{n:04d}"
        iam.create_user(UserName=name, Path=prefix)
        iam.add_user_to_group(UserName=name, GroupName="g1")
        iam.add_user_to_group(UserName=name, GroupName="g2")
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
    return arn


@contextmanager
def statements(engine, rows: list[list[str]] | None = None) -> Iterator[list[str]]:
    """Every statement sent to the store meanwhile (an executemany counts once); with `rows`,
    each statement's rows too, as text."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)
        if rows is not None:
            rows.append([str(row) for row in (parameters if executemany else [parameters])])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def writes(sent: list[str]) -> Counter[tuple[str, str]]:
    found = (WRITE.match(s) for s in sent)
    return Counter((m[1].upper(), m[2].lower()) for m in found if m)


def test_the_three_lists_are_in_flight_together(core, make_integration, iam, aws_calls):
    seed(iam, "/staff/", 3)
    lists = Rendezvous(LISTS, size=3)
    aws_calls.on_call = lists.hooks

    report = sync_integration(core, make_integration(path_prefix="/staff/").id)

    assert lists.alone == []  # each list was sent while the other two were
    assert sorted(lists.arrived) == sorted(LISTS)
    assert len(lists.threads) == 3
    assert report.accounts == 3


def test_a_failed_list_fails_the_sync_with_the_first_error_in_list_order(
    core, make_integration, iam, aws_calls
):
    seed(iam, "/staff/", 2)
    integration = make_integration(path_prefix="/staff/")
    aws_calls.fail("ListUsers", "Throttling", times=10)
    aws_calls.fail("GetAccountAuthorizationDetails", "AccessDenied")

    with pytest.raises(AwsAccessDenied, match="read the account's users and groups"):
        sync_integration(core, integration.id)

    accounts, _ = stored(core, integration.id)
    assert accounts == {}  # nothing half-written


def test_the_statements_sent_do_not_grow_with_the_accounts(core, make_integration, iam, engine):
    seed(iam, "/few/", 4)
    seed(iam, "/many/", 60)
    few, many = (
        make_integration("few", path_prefix="/few/"),
        make_integration("many", path_prefix="/many/"),
    )

    with statements(engine) as small:
        assert sync_integration(core, few.id).accounts == 4
    with statements(engine) as large:
        assert sync_integration(core, many.id).accounts == 60

    assert len(large) == len(small)
    assert writes(large) == writes(small)
    # One upsert a batch of accounts, one insert a batch of memberships and of policies.
    assert writes(large)[("INSERT", "accounts")] == 1
    assert writes(large)[("INSERT", "memberships")] == 1
    _, groups = stored(core, many.id)
    assert len(groups) == 120


def test_a_resync_without_drift_writes_only_the_accounts_upsert(
    core, make_integration, iam, engine
):
    seed(iam, "/staff/", 12)
    integration = make_integration(path_prefix="/staff/")
    sync_integration(core, integration.id)

    with statements(engine) as sent:
        report = sync_integration(core, integration.id)

    assert report.summary() == "prod: 12 accounts, 2 groups; no drift."
    # Accounts, memberships, attached policies and the policy catalogue are diffed: none
    # rewritten; the accounts' last sighting is one UPDATE.
    assert {table for _, table in writes(sent)} == {
        "groups",  # the upsert of the two groups
        "accounts",  # last seen
        "integrations",  # last sync time and status
        "audit_events",  # the sync's audit event
    }
    assert writes(sent)[("UPDATE", "accounts")] == 1
    assert writes(sent)[("INSERT", "accounts")] == 0
    with core.sessions() as session:
        seen = set(session.scalars(select(Account.last_seen_at)))
    assert len(seen) == 1 and None not in seen


def test_an_account_iam_changed_is_rewritten_and_the_others_are_not(
    core, make_integration, iam, engine
):
    seed(iam, "/staff/", 3)
    integration = make_integration(path_prefix="/staff/")
    sync_integration(core, integration.id)
    iam.tag_user(UserName="staff-0001", Tags=[{"Key": "team", "Value": "data"}])
    iam.put_user_policy(UserName="staff-0002", PolicyName="inline-one", PolicyDocument=POLICY_DOC)
    rows: list[list[str]] = []

    with statements(engine, rows) as sent:
        sync_integration(core, integration.id)

    upserts = [sorted(r) for s, r in zip(sent, rows, strict=True) if "INSERT INTO accounts" in s]
    assert len(upserts) == 1 and len(upserts[0]) == 2  # the two changed accounts only
    assert "staff-0001" in upserts[0][0] and "staff-0002" in upserts[0][1]
    with core.sessions() as session:
        where = Account.integration_id == integration.id
        tags = {
            name: t
            for name, t in session.execute(select(Account.user_name, Account.tags).where(where))
        }
        inline = session.scalar(
            select(Account.inline_policies).where(Account.user_name == "staff-0002")
        )
    assert tags == {"staff-0000": {}, "staff-0001": {"team": "data"}, "staff-0002": {}}
    assert inline == ["inline-one"]


def test_drift_in_every_table_is_written_exactly(core, make_integration, iam):
    arn = seed(iam, "/staff/", 3)
    integration = make_integration(path_prefix="/staff/")
    sync_integration(core, integration.id)
    iam.remove_user_from_group(UserName="staff-0000", GroupName="g2")
    iam.detach_user_policy(UserName="staff-0001", PolicyArn=arn)
    iam.attach_group_policy(GroupName="g1", PolicyArn=arn)
    iam.create_group(GroupName="g3")
    iam.add_user_to_group(UserName="staff-0002", GroupName="g3")
    iam.create_policy(PolicyName="new-one", PolicyDocument=POLICY_DOC)

    report = sync_integration(core, integration.id)

    assert [(d.user_name, d.groups_removed, d.policies_removed) for d in report.changed] == [
        ("staff-0000", ["g2"], []),
        ("staff-0001", [], ["pstaff"]),
        ("staff-0002", [], []),
    ]
    _, groups = stored(core, integration.id)
    assert groups == {
        ("staff-0000", "g1"),
        ("staff-0001", "g1"),
        ("staff-0001", "g2"),
        ("staff-0002", "g1"),
        ("staff-0002", "g2"),
        ("staff-0002", "g3"),
    }
    with core.sessions() as session:
        attached = session.execute(
            select(Account.user_name, Group.name, AttachedPolicy.policy_name)
            .select_from(AttachedPolicy)
            .outerjoin(Account, Account.id == AttachedPolicy.account_id)
            .outerjoin(Group, Group.id == AttachedPolicy.group_id)
            .where(AttachedPolicy.integration_id == integration.id)
        ).all()
        catalogue = set(
            session.scalars(
                select(ManagedPolicy.name).where(ManagedPolicy.integration_id == integration.id)
            )
        )
        memberships = session.scalar(select(Membership.account_id).limit(1))
    assert sorted(attached, key=str) == sorted(
        [("staff-0000", None, "pstaff"), ("staff-0002", None, "pstaff"), (None, "g1", "pstaff")],
        key=str,
    )
    assert {"pstaff", "new-one"} <= catalogue
    assert memberships is not None
