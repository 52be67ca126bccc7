"""Removing an integration (after an approver's click) leaves nothing of it but audit events
and the removal request; adding the same account back and syncing brings back its accounts,
groups and Slack links (read from the IAM tags)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import boto3
import pytest
from sqlalchemy import func, select

from bot.scheduler import housekeep
from bot.services import approvals
from bot.services.claims import claim_slot, sync_job_id
from bot.services.container import Core
from bot.services.integrations import IntegrationSpec, add_integration
from bot.services.lifecycle import OnboardSpec, link_slack_user, onboard
from bot.services.sync import sync_integration
from storage.models import (
    Account,
    AuditEvent,
    Base,
    Group,
    Integration,
    Invite,
    Membership,
    Request,
    utcnow,
)
from tests.support.requests import submit_request


@pytest.fixture
def core(roleup: Any, mocked_aws: None) -> Core:
    return roleup.core


@pytest.fixture
def key(mocked_aws: None) -> dict[str, str]:
    """The account as it stands in AWS: a key for RoleUp, bob in dev, groups dev and ops."""
    admin = boto3.client("iam", region_name="us-east-1")
    admin.create_user(UserName="roleup")
    created = admin.create_access_key(UserName="roleup")["AccessKey"]
    for group in ("dev", "ops"):
        admin.create_group(GroupName=group)
    admin.create_user(UserName="bob")
    admin.add_user_to_group(UserName="bob", GroupName="dev")
    return {"id": created["AccessKeyId"], "secret": created["SecretAccessKey"]}


def add_prod(core: Core, key: dict[str, str]) -> int:
    spec = IntegrationSpec(
        name="prod",
        access_key_id=key["id"],
        secret_access_key=key["secret"],
        approvals_channel="CAPPROVALS",
        approvers=["UAPPROVER"],
    )
    integration = add_integration(core, spec, actor="UADMIN", validate=False)
    sync_integration(core, integration.id, actor="UADMIN")
    return integration.id


def what_the_store_knows(core: Core, integration_id: int) -> dict[str, Any]:
    with core.sessions() as session:
        accounts = session.scalars(
            select(Account).where(Account.integration_id == integration_id)
        ).all()
        groups_of = {
            name: sorted(
                session.scalars(
                    select(Group.name)
                    .join(Membership, Membership.group_id == Group.id)
                    .join(Account, Account.id == Membership.account_id)
                    .where(Account.integration_id == integration_id, Account.user_name == name)
                )
            )
            for name in (a.user_name for a in accounts)
        }
        groups = session.scalars(
            select(Group.name).where(Group.integration_id == integration_id)
        ).all()
    return {
        "accounts": {a.user_name: (a.slack_user_id, groups_of[a.user_name]) for a in accounts},
        "groups": sorted(groups),
    }


def every_row_as_text(core: Core) -> str:
    with core.engine.connect() as conn:
        rows = {
            table.name: [dict(row._mapping) for row in conn.execute(select(table))]
            for table in Base.metadata.sorted_tables
        }
    return json.dumps(rows, default=str)


def rows_of(core: Core, integration_id: int) -> dict[str, int]:
    """Rows in every table that point at the integration by id."""
    found = {}
    with core.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            column = table.c.get("integration_id") if table.name != "integrations" else table.c.id
            if column is None:
                continue
            count = conn.scalar(
                select(func.count()).select_from(table).where(column == integration_id)
            )
            if count:
                found[table.name] = count
    return found


def add_pending_work(core: Core, integration_id: int) -> None:
    """A pending request, an open invite and a claimed sync tick: all of it must go too."""
    with core.sessions.begin() as session:
        session.add(
            Request(
                id=str(uuid.uuid4()),
                integration_id=integration_id,
                kind="offboard",
                payload={"user_name": "bob"},
                requester="UMANAGER",
                expires_at=utcnow() + timedelta(hours=24),
            )
        )
        session.add(
            Invite(
                token_hash=uuid.uuid4().hex * 2,
                integration_id=integration_id,
                created_by="UMANAGER",
                expires_at=utcnow() + timedelta(hours=48),
            )
        )
    claim_slot(core, sync_job_id(integration_id), 1, "test")


def test_remove_leaves_only_audit_and_readd_restores_accounts_groups_and_links(core, key):
    first_id = add_prod(core, key)
    onboard(
        core,
        first_id,
        OnboardSpec(
            username="alice", password="Tr0ub4dor&3-long", groups=["ops"], slack_user_id="UALICE"
        ),
        actor="UMANAGER",
    )
    link_slack_user(core, first_id, "bob", "UBOB", actor="UMANAGER")
    add_pending_work(core, first_id)
    sync_integration(core, first_id, actor="UADMIN")
    before = what_the_store_knows(core, first_id)
    assert before == {
        "accounts": {
            "alice": ("UALICE", ["ops"]),
            "bob": ("UBOB", ["dev"]),
            "roleup": (None, []),
        },
        "groups": ["dev", "ops"],
    }
    with core.sessions() as session:
        ciphertext = session.get_one(Integration, first_id).credentials_ciphertext
    assert ciphertext

    removal = submit_request(
        core,
        kind="remove_integration",
        integration_id=first_id,
        requester="UADMIN",
        payload={"integration": "prod"},
    )
    assert removal.state == "pending"
    assert approvals.decide(core, removal.id, approver="UAPPROVER", approve=True).state == "done"
    housekeep(core)

    assert rows_of(core, first_id) == {}
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Membership)) == 0
        assert session.scalar(select(func.count()).select_from(Account)) == 0
        removed = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "integration.removed")
        ).all()
        left = session.scalars(select(Request)).all()
    assert [(e.target, e.actor) for e in removed] == [("prod", "UAPPROVER")]
    # The removal request itself stays, detached, as the record of who asked and who approved.
    assert [(r.id, r.integration_id, r.state) for r in left] == [(removal.id, None, "done")]
    dump = every_row_as_text(core)
    assert ciphertext not in dump
    assert key["secret"] not in dump
    assert key["id"] not in dump
    assert sync_job_id(first_id) not in dump

    second_id = add_prod(core, key)
    assert what_the_store_knows(core, second_id) == before
