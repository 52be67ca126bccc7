"""The store reads the Slack surfaces ask for (handlers hold no SQL): each opens its own session
and hands back plain data (bot.services.records), readable once that session is closed."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from bot.services import account_expiry, audit, grants, integrations, invites, listing
from bot.services.audit import AuditEntry
from bot.services.errors import IntegrationNotFound, RoleUpError
from bot.services.records import IntegrationInfo
from storage.models import AccountExpiry, Grant, Invite, ManagedPolicy, utcnow
from tests.support.invite_kit import make_invite
from tests.support.seed import ADMIN, MANAGER, add_account, add_group, add_integration


def add_grant(core, integration_id, user_name, group, *, ends_in=timedelta(days=1), **extra):
    now = utcnow()
    values = {"requester": ADMIN, "starts_at": now, "ends_at": now + ends_in, **extra}
    with core.sessions.begin() as session:
        grant = Grant(
            integration_id=integration_id, user_name=user_name, group_name=group, **values
        )
        session.add(grant)
        session.flush()
        return grant.id


def add_expiry(core, integration_id, user_name, *, state="scheduled"):
    values = {"requester": ADMIN, "expires_at": utcnow() + timedelta(days=2), "state": state}
    with core.sessions.begin() as session:
        row = AccountExpiry(integration_id=integration_id, user_name=user_name, **values)
        session.add(row)
        session.flush()
        return row.id


def test_an_integration_read_as_columns_is_the_record_of_its_row(core):
    """The listings read an integration's record straight from its columns: every field the
    same as the record built from the loaded row, secrets left out, `uses_key` derived."""
    from datetime import UTC, datetime

    from storage.models import Integration

    keyed = add_integration(
        core.sessions,
        "prod",
        privileged_groups=["admins"],
        review_every_days=30,
        last_sync_at=datetime(2026, 3, 4, 5, 6, tzinfo=UTC),
    )
    role = add_integration(core.sessions, "role", key=None, role_arn="arn:aws:iam::1:role/r")
    with core.sessions() as session:
        rows = {i: IntegrationInfo.of(session.get_one(Integration, i)) for i in (keyed, role)}
    assert listing.integrations(core) == [rows[keyed], rows[role]]
    assert listing.integration_by_name(core, "role") == rows[role]
    assert listing.integration_by_id(core, keyed) == rows[keyed]
    assert rows[keyed].uses_key and not rows[role].uses_key
    assert rows[keyed].last_sync_at == datetime(2026, 3, 4, 5, 6, tzinfo=UTC)


def test_integrations_come_back_by_name_and_readable_after_their_session(core):
    add_integration(core.sessions, "stage", managers=["UOTHER"])
    prod = add_integration(core.sessions, "prod")
    every = listing.integrations(core)
    assert [i.name for i in every] == ["prod", "stage"]
    assert every[1].managers == ["UOTHER"]  # loaded: no session is needed to read it
    assert listing.integration_by_name(core, "prod").id == prod
    assert listing.integration_by_id(core, prod).approvers == ["UAPPROVER"]
    assert listing.integration_by_name(core, "nope") is None
    assert listing.integration_by_id(core, 9999) is None
    assert listing.integration_name(core, prod) == "prod"
    assert listing.integration_name(core, 9999) == ""
    assert integrations.find(core, " prod ").id == prod
    with pytest.raises(IntegrationNotFound, match="no integration named nope"):
        integrations.find(core, "nope")


def test_accounts_are_found_counted_and_paged_per_integration(core):
    prod, stage = add_integration(core.sessions, "prod"), add_integration(core.sessions, "stage")
    add_account(core.sessions, prod, "Alice", ("dev",))
    add_account(core.sessions, prod, "bob")
    add_account(core.sessions, stage, "carol")
    assert listing.username_taken(core, prod, "alice")  # IAM names ignore case
    assert not listing.username_taken(core, stage, "alice")
    every = listing.integrations(core)
    assert [i.name for i in listing.having_user(core, "carol", every)] == ["stage"]
    assert listing.having_user(core, "carol", [i for i in every if i.name == "prod"]) == []
    assert listing.accounts_per_integration(core) == {prod: 2, stage: 1}
    page = listing.accounts_of(core, [i for i in every if i.name == "prod"], text_filter="dev")
    assert [(r.user_name, r.groups) for r in page.rows] == [("Alice", ["dev"])]


def test_the_home_lists_own_grants_and_what_ends_soon_where_one_manages(core):
    mine = add_integration(core.sessions, "prod")  # MANAGER manages it
    theirs = add_integration(core.sessions, "stage", managers=["UOTHER"])
    add_grant(core, mine, "alice", "ops", slack_user_id=MANAGER)
    add_grant(core, theirs, "bob", "ops")
    add_grant(core, mine, "carol", "ops", ends_in=timedelta(days=30))  # not soon
    add_expiry(core, mine, "dave")
    add_expiry(core, theirs, "erin")
    shown = listing.time_bound_for(core, MANAGER, timedelta(days=7))
    assert [(g.user_name, g.integration) for g in shown.held] == [("alice", "prod")]
    assert [g.user_name for g in shown.ending] == ["alice"]
    assert [e.user_name for e in shown.expiring] == ["dave"]
    stranger = listing.time_bound_for(core, "USTRANGER", timedelta(days=7))
    assert (stranger.held, stranger.ending, stranger.expiring) == ([], [], [])


def test_only_an_active_grant_or_a_scheduled_expiry_can_be_extended(core):
    prod = add_integration(core.sessions, "prod")
    active = add_grant(core, prod, "alice", "ops", request_id="req-1")
    ended = add_grant(core, prod, "alice", "dev", state="ended")
    assert grants.extendable(core, active).group == "ops"
    for grant_id in (ended, None, 9999):
        with pytest.raises(RoleUpError, match="That grant has ended"):
            grants.extendable(core, grant_id)
    assert set(grants.ends_for_user(core, prod, "alice")) == {"ops"}
    assert grants.ends_for_user(core, prod, "bob") == {}
    assert grants.end_of_request(core, "req-1") is not None
    assert grants.end_of_request(core, "req-2") is None
    scheduled = add_expiry(core, prod, "bob")
    gone = add_expiry(core, prod, "carol", state="ended")
    assert account_expiry.extendable(core, scheduled).user_name == "bob"
    for expiry_id in (gone, None, 9999):
        with pytest.raises(RoleUpError, match="has been offboarded"):
            account_expiry.extendable(core, expiry_id)


def test_the_invite_modal_offers_groups_by_name_and_customer_policies_first(core):
    prod = add_integration(core.sessions, "prod")
    for name in ("ops", "dev"):
        add_group(core.sessions, prod, name)
    with core.sessions.begin() as session:
        for arn, name, aws in (
            ("arn:aws:iam::aws:policy/ReadOnlyAccess", "ReadOnlyAccess", True),
            ("arn:aws:iam::123456789012:policy/Team", "Team", False),
        ):
            session.add(ManagedPolicy(integration_id=prod, arn=arn, name=name, aws_managed=aws))
    choices = invites.invite_choices(core, prod)
    assert choices.groups == ["dev", "ops"]
    assert [name for _arn, name in choices.policies] == ["Team", "ReadOnlyAccess"]


def test_an_unsent_invite_is_revoked_but_a_used_one_stays(core, iam):
    prod = add_integration(core)
    unsent, used = make_invite(core, prod), make_invite(core, prod, slack_user_id="UOTHER")
    with core.sessions.begin() as session:
        row = session.get(Invite, used.invite_id)
        assert row is not None
        row.used_at = utcnow()
    invites.revoke_unsent(core, unsent.invite_id)
    invites.revoke_unsent(core, used.invite_id)
    with core.sessions() as session:
        assert session.get(Invite, unsent.invite_id) is None
        assert session.get(Invite, used.invite_id) is not None


def test_the_latest_audit_events_come_newest_first(core):
    with core.sessions.begin() as session:
        for n in range(3):
            audit.record(session, actor=ADMIN, action=f"test.{n}", target="t", outcome="ok")
    latest = audit.latest(core, 2)
    assert [e.action for e in latest] == ["test.2", "test.1"]
    assert all(isinstance(e, AuditEntry) for e in latest)
    assert latest[0].target == "t" and latest[0].detail == {}


def test_integration_records_are_frozen_copies_without_secrets(core):
    keyed = add_integration(
        core.sessions, "keyed", credentials_ciphertext="SEALED-PAIR", access_key_hint="AKIA…WXYZ"
    )
    add_integration(
        core.sessions,
        "role",
        key=None,
        role_arn="arn:aws:iam::123456789012:role/r",
        external_id_ciphertext="SEALED-EXTERNAL-ID",
    )
    found = [
        *listing.integrations(core),
        listing.integration_by_id(core, keyed),
        listing.integration_by_name(core, "role"),
        integrations.find(core, "keyed"),
    ]
    assert all(type(i) is IntegrationInfo for i in found)
    assert [(i.name, i.uses_key) for i in found] == [
        ("keyed", True),
        ("role", False),
        ("keyed", True),
        ("role", False),
        ("keyed", True),
    ]
    assert "SEALED" not in repr(found)
    assert integrations.credentials_label(found[0]) == "key AKIA…WXYZ"
    with pytest.raises(dataclasses.FrozenInstanceError):
        found[0].name = "renamed"  # type: ignore[misc]
    found[0].managers.append("UINTRUDER")  # a copy: the next read is untouched
    assert listing.integration_by_id(core, keyed).managers == [MANAGER]
