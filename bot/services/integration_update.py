"""Change an integration in place: its settings, lists and credentials, without removing it.

Only the fields given change. New credentials (and a change that needs more of the current
ones: turning read-only off, another path prefix) are checked with AWS exactly as when adding
(bot.services.integration_check) before anything is saved: a failing check saves nothing, and
the old key stays in use. Every change is audited as `field: old → new`, secrets as "replaced".
Turning an integration read-only fails its pending requests that would now be refused.

A form (the Edit modal) submits every field as it showed it, not only those changed: saved
over a change someone made after it was opened, it would silently undo that change (read-only
turned back off, a quorum lowered again). It carries the `settings_version` it showed, and
saving refuses when the integration's is another, checked again under the row's lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services import account_expiry, approvals, audit, grants, integrations
from bot.services.aws import key_hint, seal_key_pair
from bot.services.container import Core
from bot.services.errors import IntegrationNotFound, InvalidInput, RequestConflict
from bot.services.iam import GROUP_NAME_RE, POLICY_ARN_RE
from bot.services.iam_data import POLICY_NAME_RE
from bot.services.integration_check import check_with_aws
from bot.services.integration_spec import IntegrationSpec, Validated
from bot.services.records import IntegrationInfo, uses_key
from storage.db import lock_for_update
from storage.erasure import SECRET_TABLES, purge
from storage.models import AccountExpiry, Grant, Integration, utcnow

logger = logging.getLogger(__name__)

MAX_PRIVILEGED = 100
SHOWN_VALUE = 200  # characters of one old or new value in an audit line
REPLACED = "replaced"

#: The AWS check of an updated spec (tests pass their own); raises a RoleUpError on failure.
Validator = Callable[[Core, IntegrationSpec], Validated]


@dataclass
class IntegrationChanges:
    """What `roleup integrations update` and the Edit modal ask to change; None = unchanged.

    Lists replace the whole list (an empty list empties it); an empty approvals channel
    removes it; `rotate_every_days` 0 turns scheduled rotation off and `review_every_days` 0
    scheduled access reviews. New credentials are a key
    pair (`access_key_id` + `secret_access_key`) or a role (`role_arn`, `external_id`)."""

    read_only: bool | None = None
    path_prefix: str | None = None
    managers: list[str] | None = None
    approvers: list[str] | None = None
    breakglass: list[str] | None = None
    approvals_channel: str | None = None
    sync_interval_minutes: int | None = None
    approve_onboarding: bool | None = None
    approve_group_grants: bool | None = None
    require_reason: bool | None = None
    approvals_required: int | None = None
    privileged_policies: list[str] | None = None
    privileged_groups: list[str] | None = None
    rotate_every_days: int | None = None
    review_every_days: int | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)

    @property
    def new_credentials(self) -> bool:
        return bool(self.access_key_id or self.secret_access_key or self.role_arn)


#: Plain settings copied from the changes onto the row as they are (after the checks).
SETTINGS = (
    "read_only",
    "path_prefix",
    "managers",
    "approvers",
    "breakglass",
    "approvals_channel",
    "sync_interval_minutes",
    "approve_onboarding",
    "approve_group_grants",
    "require_reason",
    "approvals_required",
    "privileged_policies",
    "privileged_groups",
    "rotate_every_days",
    "review_every_days",
)


@dataclass(frozen=True)
class UpdateResult:
    name: str
    #: One `field: old → new` line per change (secrets as "replaced"); empty: nothing changed.
    changes: list[str]
    #: Pending requests failed because the integration turned read-only.
    failed_requests: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    values: dict[str, Any]  # column -> new value
    lines: list[str]
    credentials: bool  # the key or role is replaced
    turned_read_only: bool


def settings_version(row: Integration | IntegrationInfo) -> str:
    """A digest of every setting a form shows (the role ARN too): another one means someone
    changed the integration since."""
    shown: dict[str, Any] = {key: _comparable(getattr(row, key)) for key in SETTINGS}
    shown["role_arn"] = row.role_arn
    shown["uses_key"] = uses_key(row)  # rotations keep this
    digest = hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def update_integration(
    core: Core,
    name: str,
    changes: IntegrationChanges,
    *,
    actor: str,
    validate: bool = True,
    validator: Validator | None = None,
    shown_version: str | None = None,
) -> UpdateResult:
    """Check, (with `validate`) ask AWS, then save the changes in one guarded transaction.

    `shown_version`: the `settings_version` of the integration as a form showed it; the save
    is refused when the integration has changed since (RequestConflict)."""
    box = core.require_box()
    changes = check_privileged(changes)
    with core.sessions() as session:
        current = integrations.get_integration(session, name)
        session.expunge(current)
    _check_version(current, shown_version)
    spec = _checked_spec(current, changes)
    plan = _plan(current, spec, changes, box)
    if not plan.lines:
        return UpdateResult(current.name, [])
    if changes.new_credentials and (
        current.pending_credentials_ciphertext or current.retiring_key_id
    ):
        raise RequestConflict(
            f"A rotation of {current.name}'s access key is unfinished: run `roleup integrations "
            f"rotate-credentials {current.name}` to finish it, then replace the credentials."
        )
    if validate and _needs_aws_check(current, spec, changes):
        check = validator or check_with_aws
        validated = check(core, _with_credentials(core, current, spec, changes))
        if changes.new_credentials:
            plan.values["principal_arn"] = validated.principal_arn or spec.role_arn
            plan.values["aws_account_id"] = validated.account_id or _account_of(spec.role_arn)
    _save(core, current, plan, actor=actor, shown_version=shown_version)
    if plan.credentials:
        core.aws.forget(current.id)  # no session of the old credentials serves another call
        purge(core.engine, SECRET_TABLES)  # the old key's ciphertext leaves the store's files
    failed: list[str] = []
    if plan.turned_read_only:
        failed = approvals.fail_refused_pending(
            core,
            current.id,
            reason=f"Integration {current.name} was made read-only: RoleUp no longer changes "
            "IAM through it. Make a new request if it is still needed.",
            actor=actor,
        )
    return UpdateResult(current.name, plan.lines, failed)


def check_changes(current: Integration | IntegrationInfo, changes: IntegrationChanges) -> None:
    """The checks update_integration makes before asking AWS (no I/O): InvalidInput names the
    field, so a modal can flag it before it answers Slack."""
    _checked_spec(current, check_privileged(changes))


# --- checks --------------------------------------------------------------------------------
def _checked_spec(
    current: Integration | IntegrationInfo, changes: IntegrationChanges
) -> IntegrationSpec:
    """The integration as it would be, checked field by field (InvalidInput names the field)."""
    given = {key: getattr(changes, key) for key in SETTINGS if getattr(changes, key) is not None}
    if changes.rotate_every_days == 0 or (changes.role_arn and changes.rotate_every_days is None):
        given["rotate_every_days"] = None  # off, or a role: nothing of RoleUp's to rotate
    if changes.review_every_days == 0:
        given["review_every_days"] = None  # no scheduled reviews
    spec = IntegrationSpec(
        name=current.name,
        read_only=given.get("read_only", current.read_only),
        path_prefix=given.get("path_prefix", current.path_prefix),
        managers=given.get("managers", list(current.managers or [])),
        approvers=given.get("approvers", list(current.approvers or [])),
        breakglass=given.get("breakglass", list(current.breakglass or [])),
        approvals_channel=given.get("approvals_channel", current.approvals_channel),
        sync_interval_minutes=given.get("sync_interval_minutes", current.sync_interval_minutes),
        approve_onboarding=given.get("approve_onboarding", current.approve_onboarding),
        approve_group_grants=given.get("approve_group_grants", current.approve_group_grants),
        require_reason=given.get("require_reason", current.require_reason),
        approvals_required=given.get("approvals_required", current.approvals_required),
        rotate_every_days=given.get("rotate_every_days", current.rotate_every_days),
        review_every_days=given.get("review_every_days", current.review_every_days),
        access_key_id=changes.access_key_id,
        secret_access_key=changes.secret_access_key,
        role_arn=changes.role_arn,
        external_id=changes.external_id,
    )
    spec = integrations.clean_settings(spec)
    if changes.new_credentials or changes.external_id:
        if changes.external_id and not changes.role_arn:
            raise InvalidInput(
                "An external id goes with a new role ARN: give --role-arn too.",
                field="external_id",
            )
        integrations.check_credentials(spec)
    keyed = spec.uses_key if changes.new_credentials else uses_key(current)
    if spec.rotate_every_days is not None and not keyed:
        raise InvalidInput(
            "Only an integration with an access key can rotate it: a role has nothing to rotate.",
            field="rotate_every_days",
        )
    return spec


def check_privileged(changes: IntegrationChanges) -> IntegrationChanges:
    """Privileged policies (names or ARNs) and groups (names) as IAM spells them."""
    policies = _names(changes.privileged_policies, "privileged_policies", _is_policy)
    groups = _names(changes.privileged_groups, "privileged_groups", GROUP_NAME_RE.fullmatch)
    return replace(changes, privileged_policies=policies, privileged_groups=groups)


def _is_policy(value: str) -> bool:
    return bool(POLICY_NAME_RE.fullmatch(value) or POLICY_ARN_RE.fullmatch(value))


def _names(values: list[str] | None, what: str, valid: Callable[[str], object]) -> list[str] | None:
    if values is None:
        return None
    kept: list[str] = []
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        if not valid(value):
            label = what.replace("_", " ").capitalize()
            raise InvalidInput(
                f"{label} must be IAM names{' or policy ARNs' if 'polic' in what else ''} "
                f"(letters, digits and +=,.@_-); got {value[:40]!r}.",
                field=what,
            )
        if value not in kept:
            kept.append(value)
    if len(kept) > MAX_PRIVILEGED:
        raise InvalidInput(f"At most {MAX_PRIVILEGED} {what.replace('_', ' ')}.", field=what)
    return kept


def _needs_aws_check(
    current: Integration, spec: IntegrationSpec, changes: IntegrationChanges
) -> bool:
    """New credentials, or a change that asks more of the current ones: write permissions
    (read-only turned off) or permissions on other users (another path prefix)."""
    return (
        changes.new_credentials
        or (current.read_only and not spec.read_only)
        or spec.path_prefix != current.path_prefix
    )


def _with_credentials(
    core: Core, current: Integration, spec: IntegrationSpec, changes: IntegrationChanges
) -> IntegrationSpec:
    """The spec AWS checks: with the new credentials, else the current ones (decrypted in
    memory only, for this check)."""
    if changes.new_credentials:
        return spec
    box = core.require_box()
    if current.credentials_ciphertext:
        pair = core.aws.credentials_for(current, box)  # decrypts; no AWS call for a key
        return replace(
            spec,
            access_key_id=pair["aws_access_key_id"],
            secret_access_key=pair["aws_secret_access_key"],
        )
    external_id = None
    if current.external_id_ciphertext:
        external_id = box.decrypt(
            current.external_id_ciphertext,
            what=f"the external id of integration {current.name}",
        )
    return replace(spec, role_arn=current.role_arn, external_id=external_id)


def _account_of(role_arn: str | None) -> str | None:
    return role_arn.split(":")[4] if role_arn else None


# --- what changes --------------------------------------------------------------------------
def _plan(
    current: Integration, spec: IntegrationSpec, changes: IntegrationChanges, box: Any
) -> _Plan:
    values: dict[str, Any] = {}
    lines: list[str] = []
    for key in SETTINGS:
        if key in ("privileged_policies", "privileged_groups"):
            new = getattr(changes, key)
            if new is None:
                continue
        else:
            new = getattr(spec, key)
        old = getattr(current, key)
        if _comparable(old) != _comparable(new):
            values[key] = new
            lines.append(f"{label(key)}: {shown(old)} → {shown(new)}")
    credentials = changes.new_credentials
    if credentials:
        values.update(_credential_values(spec, box))
        lines.extend(_credential_lines(current, spec))
    return _Plan(
        values=values,
        lines=lines,
        credentials=credentials,
        turned_read_only=bool(spec.read_only and not current.read_only),
    )


def _credential_values(spec: IntegrationSpec, box: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "credentials_changed_at": utcnow(),
        "access_key_hint": None,
        "credentials_ciphertext": None,
        "role_arn": None,
        "external_id_ciphertext": None,
    }
    if spec.access_key_id and spec.secret_access_key:
        values["principal_arn"] = None  # the key's user: learnt by the check (or health)
        values["access_key_hint"] = key_hint(spec.access_key_id)
        values["credentials_ciphertext"] = seal_key_pair(
            box, spec.access_key_id, spec.secret_access_key
        )
    else:
        values["role_arn"] = spec.role_arn
        values["principal_arn"] = spec.role_arn
        values["aws_account_id"] = _account_of(spec.role_arn)
        if spec.external_id:
            values["external_id_ciphertext"] = box.encrypt(spec.external_id)
    return values


def _credential_lines(current: Integration, spec: IntegrationSpec) -> list[str]:
    before = integrations.credentials_label(current)
    if spec.access_key_id:
        lines = [
            f"credentials: {before} → key {key_hint(spec.access_key_id)}",
            f"secret access key: {REPLACED}",
        ]
    else:
        lines = [f"credentials: {before} → role {spec.role_arn}"]
        if spec.external_id or current.external_id_ciphertext:
            lines.append(f"external id: {REPLACED if spec.external_id else 'removed'}")
    return lines


def _comparable(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


def label(key: str) -> str:
    return key.replace("_", " ")


def shown(value: Any) -> str:
    if value is None or value == []:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return text if len(text) <= SHOWN_VALUE else text[: SHOWN_VALUE - 1] + "…"


# --- save ----------------------------------------------------------------------------------
def _refuse_while_access_ends_on(session: Session, row: Integration) -> None:
    """A read-only integration cannot remove a membership or an account, so a time-bound grant
    or an expiring account on it would never end: they end first. Checked under the
    integration's row lock, so one given meanwhile is seen (its request ran before the lock)
    or refused (read-only after it)."""
    running = session.scalars(
        select(Grant.id)
        .where(Grant.integration_id == row.id, Grant.state.in_((grants.ACTIVE, grants.ENDING)))
        .order_by(Grant.id)
    ).all()
    if running:
        shown = ", ".join(f"#{gid}" for gid in running[:5]) + (" …" if len(running) > 5 else "")
        raise RequestConflict(
            f"{row.name} has {len(running)} time-bound grant(s) still running ({shown}): a "
            "read-only integration could not remove them when they end. End them first "
            "(`roleup grants end ID` or End now), then make it read-only."
        )
    expiring = session.scalars(
        select(AccountExpiry.user_name)
        .where(
            AccountExpiry.integration_id == row.id,
            AccountExpiry.state.in_((account_expiry.SCHEDULED, account_expiry.ENDING)),
        )
        .order_by(AccountExpiry.expires_at)
    ).all()
    if expiring:
        names = ", ".join(expiring[:5]) + (" …" if len(expiring) > 5 else "")
        raise RequestConflict(
            f"{row.name} has {len(expiring)} account(s) set to expire ({names}): a read-only "
            "integration could not offboard them at their date. Offboard them, or make it "
            "read-only once they are gone."
        )


def _check_version(row: Integration, shown_version: str | None) -> None:
    if shown_version is not None and settings_version(row) != shown_version:
        raise RequestConflict(
            f"Integration {row.name} was changed by someone else after this form was opened: "
            f"nothing was saved. Open it again (`/roleup integration edit {row.name}`) to see "
            "its settings as they are now."
        )


def _save(
    core: Core, current: Integration, plan: _Plan, *, actor: str, shown_version: str | None
) -> None:
    with core.sessions.begin() as session:
        lock_for_update(session)  # SQLite ignores FOR UPDATE (storage.db)
        row = session.scalar(
            select(Integration).where(Integration.id == current.id).with_for_update()
        )
        if row is None:
            raise IntegrationNotFound(f"There is no integration named {current.name}.")
        _check_version(row, shown_version)  # changed while AWS checked the new values
        if plan.credentials and (
            row.credentials_ciphertext != current.credentials_ciphertext
            or row.role_arn != current.role_arn
            or row.pending_credentials_ciphertext
            or row.retiring_key_id
        ):
            # Rotated or replaced meanwhile: the check above was of another key's world.
            raise RequestConflict(
                f"The credentials of {row.name} changed while these were being checked: "
                "nothing was saved; try again."
            )
        if plan.turned_read_only:
            _refuse_while_access_ends_on(session, row)
        for key, value in plan.values.items():
            setattr(row, key, value)
        audit.record_integration(
            session,
            row.name,
            actor=actor[:64],
            action="integration.updated",
            detail={"changes": plan.lines},
        )
    logger.info("integration %s updated: %s", current.name, "; ".join(plan.lines))
