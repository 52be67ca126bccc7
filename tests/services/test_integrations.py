"""Integrations: validated input, sealed keys, unique names, removal with all data, rotation."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.app import create_core
from bot.services import integrations
from bot.services.errors import IntegrationNotFound, InvalidCredentials, InvalidInput
from bot.services.integrations import IntegrationSpec
from storage.crypto import SecretBox, SecretUnreadable, generate_key
from storage.models import (
    Account,
    AttachedPolicy,
    AuditEvent,
    Group,
    Integration,
    Invite,
    ManagedPolicy,
    Membership,
    Request,
)
from tests.support.config import TEST_KEY
from tests.support.secrets import rows_containing

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
ROLE = "arn:aws:iam::123456789012:role/RoleUp"


def key_spec(name: str = "prod", **changes: object) -> IntegrationSpec:
    spec = IntegrationSpec(name=name, access_key_id=KEY_ID, secret_access_key=SECRET)
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def role_spec(name: str = "staging", **changes: object) -> IntegrationSpec:
    spec = IntegrationSpec(name=name, role_arn=ROLE, external_id="roleup-ext-42")
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def test_a_key_integration_is_saved_with_its_pair_sealed(core, box):
    saved = integrations.add_integration(
        core,
        key_spec(managers=["U1", " S2 "], approvers=["U3"], approvals_channel="C9"),
        actor="UADMIN",
        validate=False,
    )
    with core.sessions() as s:
        stored = integrations.get_integration(s, "prod")
    assert stored.id == saved.id
    assert stored.access_key_hint == "AKIA…MPLE"
    assert stored.managers == ["U1", "S2"] and stored.approvers == ["U3"]
    assert stored.approvals_channel == "C9" and stored.created_by == "UADMIN"
    assert stored.credentials_ciphertext is not None
    assert SECRET not in stored.credentials_ciphertext
    creds = core.aws.credentials_for(stored, box)
    assert creds == {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET}
    assert rows_containing(core.engine, SECRET) == []
    assert integrations.credentials_label(stored) == "key AKIA…MPLE"


def test_a_role_integration_keeps_its_external_id_encrypted(core, box):
    integrations.add_integration(core, role_spec(read_only=True), actor="UADMIN", validate=False)
    with core.sessions() as s:
        stored = integrations.get_integration(s, "staging")
    assert stored.role_arn == ROLE and stored.credentials_ciphertext is None
    assert stored.aws_account_id == "123456789012"
    assert stored.external_id_ciphertext is not None
    assert box.decrypt(stored.external_id_ciphertext, what="x") == "roleup-ext-42"
    assert rows_containing(core.engine, "roleup-ext-42") == []
    assert integrations.describe(stored)["mode"] == "read-only"


def test_adding_is_audited_without_the_secret(core):
    integrations.add_integration(core, key_spec(), actor="UADMIN", validate=False)
    with core.sessions() as s:
        event = s.scalars(select(AuditEvent)).one()
    assert (event.action, event.actor, event.integration) == ("integration.added", "UADMIN", "prod")
    assert event.detail["key_hint"] == "AKIA…MPLE"
    assert SECRET not in repr(event.detail)


BAD_SPECS = [
    (key_spec(name=""), "name", "1 to 64"),
    (key_spec(name="Prod"), "name", "a-z"),
    (key_spec(name="x" * 65), "name", "1 to 64"),
    (key_spec(name="pr od"), "name", "a-z"),
    (key_spec(path_prefix="engineering/"), "path_prefix", "start and end with /"),
    (key_spec(path_prefix="/engineering"), "path_prefix", "start and end with /"),
    (key_spec(path_prefix="/a b/"), "path_prefix", "without spaces"),
    (key_spec(path_prefix="/" + "a" * 511 + "/"), "path_prefix", "512"),
    (key_spec(access_key_id="akia-lower"), "access_key_id", "capital letters"),
    (key_spec(secret_access_key=""), "secret_access_key", "empty"),
    (key_spec(secret_access_key="   "), "secret_access_key", "empty"),
    (key_spec(secret_access_key="short"), "secret_access_key", "16 to 128"),
    (key_spec(external_id="ext-1"), "external_id", "role ARN"),
    (key_spec(role_arn=ROLE), "access_key_id", "not both"),
    (IntegrationSpec(name="none"), "access_key_id", "access key id and secret, or a role"),
    (role_spec(role_arn="arn:aws:iam::12345:role/R"), "role_arn", "arn:aws:iam::"),
    (role_spec(role_arn="arn:aws:iam::123456789012:user/R"), "role_arn", "arn:aws:iam::"),
    (role_spec(external_id="x"), "external_id", "2 to 1224"),
    (role_spec(external_id="has space"), "external_id", "2 to 1224"),
    (role_spec(secret_access_key=SECRET), "secret_access_key", "not a role"),
    (key_spec(sync_interval_minutes=0), "sync_interval_minutes", "from 1 to 1440"),
    (key_spec(sync_interval_minutes=1441), "sync_interval_minutes", "from 1 to 1440"),
    (key_spec(managers=["alice"]), "managers", "Slack user or user group ids"),
    (key_spec(approvers=["<@U1|a>"]), "approvers", "Slack user or user group ids"),
    (key_spec(approvals_channel="#general"), "approvals_channel", "channel id"),
]


@pytest.mark.parametrize(("spec", "field", "words"), BAD_SPECS)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_saved(core, spec, field, words):
    with pytest.raises(InvalidInput) as info:
        integrations.add_integration(core, spec, actor="UADMIN", validate=False)
    assert info.value.field == field
    assert words in str(info.value)
    assert SECRET not in str(info.value)
    assert integrations.list_integrations(core) == []


def test_a_malformed_secret_is_never_echoed(core):
    bad = "has a space but is otherwise a very secret value"
    with pytest.raises(InvalidInput) as info:
        integrations.add_integration(
            core, key_spec(secret_access_key=bad), actor="U", validate=False
        )
    assert bad not in str(info.value)


def test_good_edge_values_are_accepted(core):
    spec = key_spec(
        name="a",
        path_prefix="/team/eng-1/",
        sync_interval_minutes=1440,
        managers=["W0ABC", "U01"],
        approvals_channel="G123",
    )
    saved = integrations.add_integration(core, spec, actor="U", validate=False)
    assert saved.path_prefix == "/team/eng-1/"
    gov = role_spec(
        name="gov_1", role_arn="arn:aws-us-gov:iam::123456789012:role/ops/RoleUp", external_id=None
    )
    integrations.add_integration(core, gov, actor="U", validate=False)
    assert [i.name for i in integrations.list_integrations(core)] == ["a", "gov_1"]


def test_a_name_can_only_be_used_once(core):
    integrations.add_integration(core, key_spec(), actor="U", validate=False)
    with pytest.raises(InvalidInput, match="integration named prod already exists") as info:
        integrations.add_integration(core, role_spec(name="prod"), actor="U", validate=False)
    assert info.value.field == "name"
    assert len(integrations.list_integrations(core)) == 1


def test_the_validator_runs_before_saving_and_its_account_id_is_kept(core):
    seen: list[tuple[str, str | None]] = []

    def validator(given_core, spec):
        seen.append((spec.name, spec.access_key_id))
        assert integrations.list_integrations(given_core) == []  # nothing saved yet
        return "210987654321"

    after: list[str] = []
    saved = integrations.add_integration(
        core,
        key_spec(name=" prod "),
        actor="U",
        validator=validator,
        after_add=lambda c, integration: after.append(integration.name),
    )
    assert seen == [("prod", KEY_ID)]
    assert after == ["prod"]
    assert saved.aws_account_id == "210987654321"


def test_credentials_the_validator_refuses_save_nothing(core):
    def refuse(given_core, spec):
        raise InvalidCredentials("AWS refused the key of prod: InvalidClientTokenId.")

    with pytest.raises(InvalidCredentials, match="refused the key"):
        integrations.add_integration(core, key_spec(), actor="U", validator=refuse)
    assert integrations.list_integrations(core) == []
    with core.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_without_validate_neither_validator_nor_first_sync_runs(core):
    def explode(*args):
        raise AssertionError("must not run")

    integrations.add_integration(
        core, key_spec(), actor="U", validate=False, validator=explode, after_add=explode
    )
    assert len(integrations.list_integrations(core)) == 1


def test_an_unknown_name_is_a_clear_not_found(core):
    with core.sessions() as s, pytest.raises(IntegrationNotFound, match="no integration named x"):
        integrations.get_integration(s, "x")
    with pytest.raises(IntegrationNotFound):
        integrations.remove_integration(core, "x", actor="U")


def _fill(core, integration_id: int) -> dict[str, str]:
    """One row of every kind that belongs to an integration; returns request ids."""
    now = datetime.now(UTC)
    ids = {"plain": str(uuid.uuid4()), "removal": str(uuid.uuid4())}
    with core.sessions.begin() as s:
        account = Account(integration_id=integration_id, user_name=f"alice{integration_id}")
        group = Group(integration_id=integration_id, name="devs")
        s.add_all([account, group])
        s.flush()
        s.add(Membership(account_id=account.id, group_id=group.id))
        s.add(
            AttachedPolicy(
                integration_id=integration_id,
                account_id=account.id,
                policy_arn="arn:aws:iam::aws:policy/ReadOnlyAccess",
                policy_name="ReadOnlyAccess",
            )
        )
        s.add(
            ManagedPolicy(
                integration_id=integration_id,
                arn="arn:aws:iam::aws:policy/ReadOnlyAccess",
                name="ReadOnlyAccess",
            )
        )
        for key, request_id in ids.items():
            s.add(
                Request(
                    id=request_id,
                    integration_id=integration_id,
                    kind="remove_integration" if key == "removal" else "onboard",
                    requester="U1",
                    secret_ciphertext=SecretBox([TEST_KEY]).encrypt("Init-Passw0rd!"),
                )
            )
        s.add(
            Invite(
                token_hash=uuid.uuid4().hex,
                integration_id=integration_id,
                created_by="U1",
                expires_at=now + timedelta(hours=48),
            )
        )
    return ids


def _count_of(core, model, integration_id: int) -> int:
    with core.sessions() as s:
        return s.scalar(
            select(func.count()).select_from(model).where(model.integration_id == integration_id)
        )


def test_removing_deletes_every_row_and_the_key_but_the_audit_stays(core):
    prod = integrations.add_integration(core, key_spec(), actor="U", validate=False)
    other = integrations.add_integration(core, role_spec(), actor="U", validate=False)
    ids = _fill(core, prod.id)
    _fill(core, other.id)

    integrations.remove_integration(core, "prod", actor="UADMIN", request_id=ids["removal"])

    for model in (Account, Group, AttachedPolicy, ManagedPolicy, Invite):
        assert _count_of(core, model, prod.id) == 0, model.__name__
        assert _count_of(core, model, other.id) == 1, model.__name__
    with core.sessions() as s:
        assert s.get(Integration, prod.id) is None
        assert s.scalar(select(func.count()).select_from(Membership)) == 1
        assert s.get(Request, ids["plain"]) is None
        kept = s.get(Request, ids["removal"])
        assert kept is not None and kept.integration_id is None
        removed = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "integration.removed")
        ).one()
    assert (removed.actor, removed.integration) == ("UADMIN", "prod")
    assert removed.request_id == ids["removal"]
    assert [i.name for i in integrations.list_integrations(core)] == ["staging"]
    # The name is free again: adding it back works.
    integrations.add_integration(core, key_spec(), actor="U", validate=False)


def test_rotate_keys_moves_every_secret_to_the_first_key(settings):
    old, new = TEST_KEY, generate_key()
    old_core = create_core(dataclasses.replace(settings, encryption_keys=(old,)))
    try:
        prod = integrations.add_integration(old_core, key_spec(), actor="U", validate=False)
        integrations.add_integration(old_core, role_spec(), actor="U", validate=False)
        _fill(old_core, prod.id)
    finally:
        old_core.engine.dispose()

    both = create_core(dataclasses.replace(settings, encryption_keys=(new, old)))
    try:
        assert integrations.rotate_keys(both, actor="cli") == 4  # key, external id, 2 requests
    finally:
        both.engine.dispose()

    only_new = create_core(dataclasses.replace(settings, encryption_keys=(new,)))
    try:
        with only_new.sessions() as s:
            stored = integrations.get_integration(s, "prod")
            role = integrations.get_integration(s, "staging")
            secrets = list(s.scalars(select(Request.secret_ciphertext)))
            event = s.scalars(select(AuditEvent).where(AuditEvent.action == "keys.rotated")).one()
        box = only_new.require_box()
        assert only_new.aws.credentials_for(stored, box)["aws_secret_access_key"] == SECRET
        assert role.external_id_ciphertext is not None
        assert box.decrypt(role.external_id_ciphertext, what="x") == "roleup-ext-42"
        assert {box.decrypt(token, what="x") for token in secrets if token} == {"Init-Passw0rd!"}
        assert event.detail == {"count": 4}
    finally:
        only_new.engine.dispose()


def test_rotate_with_a_key_that_fits_nothing_names_the_integration_and_changes_nothing(
    core, settings
):
    integrations.add_integration(core, key_spec(), actor="U", validate=False)
    with core.sessions() as s:
        before = integrations.get_integration(s, "prod").credentials_ciphertext
    stranger = create_core(dataclasses.replace(settings, encryption_keys=(generate_key(),)))
    try:
        with pytest.raises(SecretUnreadable, match="integration prod") as info:
            integrations.rotate_keys(stranger)
    finally:
        stranger.engine.dispose()
    assert SECRET not in str(info.value)
    with core.sessions() as s:
        assert integrations.get_integration(s, "prod").credentials_ciphertext == before


def test_rotate_keys_knows_every_encrypted_column():
    """A new *_ciphertext column must be added to rotate_keys (and to this list)."""
    from storage.models import Base

    encrypted = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.name.endswith("_ciphertext")
    }
    assert encrypted == {
        "integrations.credentials_ciphertext",
        "integrations.external_id_ciphertext",
        "integrations.pending_credentials_ciphertext",
        "requests.secret_ciphertext",
    }
