"""Integrations: add (validated, key sealed), list, find, remove with all their data, rotate keys.

An integration's secret access key and external id are only ever stored encrypted; what may be
shown of its key is the masked hint. Every change is recorded in the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.services import audit, policy
from bot.services.aws import key_hint, seal_key_pair
from bot.services.container import Core
from bot.services.errors import IntegrationNotFound, InvalidInput, RequestConflict
from bot.services.integration_check import check_with_aws, first_sync

# IntegrationSpec is re-exported: callers import it from here.
from bot.services.integration_spec import IntegrationSpec, Validated
from bot.services.records import IntegrationInfo, uses_key
from bot.slack import ids as slack_ids
from storage.crypto import SecretBox
from storage.erasure import SECRET_TABLES, purge
from storage.models import Integration, Request, utcnow

NAME = re.compile(r"[a-z0-9_-]{1,64}")
# IAM: a path is "/" or starts and ends with "/", printable ASCII without spaces, up to 512.
PATH_PREFIX = re.compile(r"/|/[\x21-\x7e]{1,510}/")
ROLE_ARN = re.compile(
    r"arn:aws(?:-cn|-us-gov|-iso|-iso-b)?:iam::\d{12}:role/(?:[\x21-\x7e]*/)?[\w+=,.@-]{1,64}"
)
ACCESS_KEY_ID = re.compile(r"[A-Z0-9]{16,128}")
SECRET_ACCESS_KEY = re.compile(r"\S{16,128}")
# STS: 2 to 1224 characters of [\w+=,.@:/-].
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")
MIN_SYNC_MINUTES = 1
MAX_APPROVALS = policy.MAX_APPROVALS
MAX_SYNC_MINUTES = 24 * 60
MAX_ROTATE_DAYS = 365
MIN_REVIEW_EVERY_DAYS, MAX_REVIEW_EVERY_DAYS = 7, 366


#: Checks the credentials with AWS before anything is saved; returns the AWS account id (or
#: None if unknown) and raises a RoleUpError (e.g. InvalidCredentials) when they do not work.
Validator = Callable[[Core, IntegrationSpec], "Validated | str | None"]
#: Runs once the integration is saved (the first sync); its failure does not undo the add.
AfterAdd = Callable[[Core, Integration], None]


def default_validator() -> Validator | None:
    """The credential check used when add_integration is not given one: STS GetCallerIdentity,
    an IAM read and, for read-write, the policy simulator (bot.services.integration_check)."""
    return check_with_aws


def default_after_add() -> AfterAdd | None:
    """What runs after a validated add: the first sync (its failure does not undo the add)."""
    return first_sync


# --- validation --------------------------------------------------------------------------
def clean_spec(spec: IntegrationSpec) -> IntegrationSpec:
    """The spec with whitespace trimmed and every field checked; InvalidInput names the field."""
    name = spec.name.strip()
    if not NAME.fullmatch(name):
        raise InvalidInput(
            "The integration name must be 1 to 64 characters of a-z, 0-9, - and _.", field="name"
        )
    cleaned = clean_settings(replace(spec, name=name))
    check_credentials(cleaned)
    return cleaned


def clean_settings(spec: IntegrationSpec) -> IntegrationSpec:
    """clean_spec without the name and credentials checks: what `integrations update` checks
    when the credentials stay as they are."""
    cleaned = replace(
        spec,
        access_key_id=_blank_to_none(spec.access_key_id),
        secret_access_key=_blank_to_none(spec.secret_access_key),
        role_arn=_blank_to_none(spec.role_arn),
        external_id=_blank_to_none(spec.external_id),
        path_prefix=(spec.path_prefix or "/").strip(),
        managers=_slack_ids(spec.managers, "managers"),
        approvers=_slack_ids(spec.approvers, "approvers"),
        breakglass=_slack_ids(spec.breakglass, "breakglass"),
        approvals_channel=_blank_to_none(spec.approvals_channel),
    )
    _check_path_prefix(cleaned.path_prefix)
    _check_channel(cleaned.approvals_channel)
    _check_interval(cleaned.sync_interval_minutes)
    _check_approvals_required(cleaned.approvals_required)
    _check_rotate_every(cleaned.rotate_every_days)
    _check_review_every(cleaned.review_every_days)
    return cleaned


def _check_rotate_every(days: int | None) -> None:
    if days is None:
        return
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_ROTATE_DAYS:
        raise InvalidInput(
            f"Rotate every must be a whole number of days from 1 to {MAX_ROTATE_DAYS} "
            "(0 turns it off).",
            field="rotate_every_days",
        )


def _check_review_every(days: int | None) -> None:
    """An access review schedule (bot.services.review_jobs): none, or every 7 to 366 days."""
    if days is None:
        return
    if (
        isinstance(days, bool)
        or not isinstance(days, int)
        or not MIN_REVIEW_EVERY_DAYS <= days <= MAX_REVIEW_EVERY_DAYS
    ):
        raise InvalidInput(
            f"Access reviews run every {MIN_REVIEW_EVERY_DAYS} to {MAX_REVIEW_EVERY_DAYS} days.",
            field="review_every_days",
        )


def _check_approvals_required(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_APPROVALS:
        raise InvalidInput(
            f"Approvals required must be a whole number from 1 to {MAX_APPROVALS}.",
            field="approvals_required",
        )


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def check_credentials(spec: IntegrationSpec) -> None:
    """Exactly one of a well-formed key pair or a role ARN (with an optional external id)."""
    if spec.access_key_id and spec.role_arn:
        raise InvalidInput(
            "Give either an access key or a role ARN, not both.", field="access_key_id"
        )
    if spec.access_key_id:
        _check_key_pair(spec)
    elif spec.role_arn:
        _check_role(spec)
    else:
        raise InvalidInput(
            "Give an access key id and secret, or a role ARN.", field="access_key_id"
        )


def _check_key_pair(spec: IntegrationSpec) -> None:
    assert spec.access_key_id is not None
    if not ACCESS_KEY_ID.fullmatch(spec.access_key_id):
        raise InvalidInput(
            "The access key id must be 16 to 128 capital letters and digits (like AKIA…).",
            field="access_key_id",
        )
    if not spec.secret_access_key:
        raise InvalidInput("The secret access key is empty.", field="secret_access_key")
    if not SECRET_ACCESS_KEY.fullmatch(spec.secret_access_key):
        # Never echo the value: it is a secret even when malformed.
        raise InvalidInput(
            "The secret access key must be 16 to 128 characters without spaces.",
            field="secret_access_key",
        )
    if spec.external_id:
        raise InvalidInput("An external id goes with a role ARN, not a key.", field="external_id")


def _check_role(spec: IntegrationSpec) -> None:
    assert spec.role_arn is not None
    if spec.secret_access_key:
        raise InvalidInput(
            "A secret access key goes with an access key id, not a role.",
            field="secret_access_key",
        )
    if not ROLE_ARN.fullmatch(spec.role_arn):
        raise InvalidInput(
            "The role ARN must look like arn:aws:iam::123456789012:role/RoleUp.", field="role_arn"
        )
    if spec.external_id is not None and not EXTERNAL_ID.fullmatch(spec.external_id):
        raise InvalidInput(
            "The external id must be 2 to 1224 characters of letters, digits and +=,.@:/-_.",
            field="external_id",
        )


def _check_path_prefix(prefix: str) -> None:
    if not PATH_PREFIX.fullmatch(prefix):
        raise InvalidInput(
            "The path prefix must start and end with / (like /engineering/), without spaces, "
            "at most 512 characters.",
            field="path_prefix",
        )


def _slack_ids(values: list[str], what: str) -> list[str]:
    ids: list[str] = []
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        if not slack_ids.PRINCIPAL.fullmatch(value):
            raise InvalidInput(
                f"{what.capitalize()} must be Slack user or user group ids (U…, W… or S…); "
                f"got {value[:40]!r}.",
                field=what,
            )
        if value not in ids:
            ids.append(value)
    return ids


def _check_channel(channel: str | None) -> None:
    if channel is not None and not slack_ids.is_channel(channel):
        raise InvalidInput(
            f"The approvals channel must be a Slack channel id (C… or G…); got {channel[:40]!r}.",
            field="approvals_channel",
        )


def _check_interval(minutes: int) -> None:
    if not MIN_SYNC_MINUTES <= minutes <= MAX_SYNC_MINUTES:
        raise InvalidInput(
            f"The sync interval must be from {MIN_SYNC_MINUTES} to {MAX_SYNC_MINUTES} minutes.",
            field="sync_interval_minutes",
        )


# --- add -----------------------------------------------------------------------------------
def add_integration(
    core: Core,
    spec: IntegrationSpec,
    *,
    actor: str,
    validate: bool = True,
    validator: Validator | None = None,
    after_add: AfterAdd | None = None,
) -> Integration:
    """Check the spec (and, with `validate`, the credentials with AWS), then save it sealed.

    Nothing is saved when any check fails. `after_add` (the first sync) runs only after a
    validated add, once the integration is committed.
    """
    spec = clean_spec(spec)
    box = core.require_box()
    _refuse_taken_name(core, spec.name)
    validated = Validated(None)
    if validate:
        check = validator or default_validator()
        if check is not None:
            found = check(core, spec)
            validated = found if isinstance(found, Validated) else Validated(found)
    integration = _save(
        core,
        spec,
        box,
        account_id=validated.account_id,
        principal_arn=validated.principal_arn or spec.role_arn,
        actor=actor,
    )
    if validate:
        follow_up = after_add or default_after_add()
        if follow_up is not None:
            follow_up(core, integration)
    return integration


def _refuse_taken_name(core: Core, name: str) -> None:
    with core.sessions() as session:
        if session.scalar(select(Integration.id).where(Integration.name == name)) is not None:
            raise _name_taken(name)


def _name_taken(name: str) -> InvalidInput:
    return InvalidInput(
        f"An integration named {name} already exists; pick another name or remove it first.",
        field="name",
    )


def _save(
    core: Core,
    spec: IntegrationSpec,
    box: SecretBox,
    *,
    account_id: str | None,
    principal_arn: str | None,
    actor: str,
) -> Integration:
    integration = Integration(
        principal_arn=principal_arn,
        name=spec.name,
        read_only=spec.read_only,
        path_prefix=spec.path_prefix,
        role_arn=spec.role_arn,
        aws_account_id=account_id or _account_of_role(spec.role_arn),
        managers=spec.managers,
        approvers=spec.approvers,
        breakglass=spec.breakglass,
        approvals_channel=spec.approvals_channel,
        sync_interval_minutes=spec.sync_interval_minutes,
        approve_onboarding=spec.approve_onboarding,
        approve_group_grants=spec.approve_group_grants,
        require_reason=spec.require_reason,
        approvals_required=spec.approvals_required,
        rotate_every_days=spec.rotate_every_days if spec.uses_key else None,
        credentials_changed_at=utcnow(),
        review_every_days=spec.review_every_days,
        created_by=actor,
    )
    if spec.access_key_id and spec.secret_access_key:
        integration.access_key_hint = key_hint(spec.access_key_id)
        integration.credentials_ciphertext = seal_key_pair(
            box, spec.access_key_id, spec.secret_access_key
        )
    if spec.external_id:
        integration.external_id_ciphertext = box.encrypt(spec.external_id)
    try:
        with core.sessions.begin() as session:
            session.add(integration)
            session.flush()
            audit.record_integration(
                session,
                spec.name,
                actor=actor,
                action="integration.added",
                detail=_audit_detail(integration),
            )
    except IntegrityError:
        # Someone added the same name between our check and this insert.
        raise _name_taken(spec.name) from None
    return integration


def _account_of_role(role_arn: str | None) -> str | None:
    return role_arn.split(":")[4] if role_arn else None


def _audit_detail(integration: Integration) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "mode": mode_of(integration),
        "path_prefix": integration.path_prefix,
        "require_reason": bool(integration.require_reason),
        "approvals_required": integration.approvals_required,
        "review_every_days": integration.review_every_days,
    }
    if integration.access_key_hint:
        detail["key_hint"] = integration.access_key_hint
    if integration.role_arn:
        detail["role_arn"] = integration.role_arn
    return detail


# --- read ----------------------------------------------------------------------------------
def list_integrations(core: Core) -> list[Integration]:
    with core.sessions() as session:
        return list(session.scalars(select(Integration).order_by(Integration.name)))


def get_integration(session: Session, name: str) -> Integration:
    found = session.scalar(select(Integration).where(Integration.name == name.strip()))
    if found is None:
        raise IntegrationNotFound(f"There is no integration named {name.strip()[:64]}.")
    return found


def find(core: Core, name: str) -> IntegrationInfo:
    """The integration of that name, or IntegrationNotFound."""
    with core.sessions() as session:
        return IntegrationInfo.of(get_integration(session, name))


def mode_of(integration: Integration) -> str:
    return "read-only" if integration.read_only else "read-write"


def credentials_label(integration: Integration | IntegrationInfo) -> str:
    """What may be shown of how the integration reaches AWS: a masked key or the role ARN."""
    if uses_key(integration):
        return f"key {integration.access_key_hint or '…'}"
    return f"role {integration.role_arn}"


def describe(integration: Integration) -> dict[str, Any]:
    """Everything about an integration that may be shown (no ciphertext, no secret)."""
    return {
        "name": integration.name,
        "mode": mode_of(integration),
        "path_prefix": integration.path_prefix,
        "access_key_hint": integration.access_key_hint,
        "role_arn": integration.role_arn,
        "aws_account_id": integration.aws_account_id,
        "managers": list(integration.managers),
        "approvers": list(integration.approvers),
        "breakglass": list(integration.breakglass or []),
        "approvals_channel": integration.approvals_channel,
        "sync_interval_minutes": integration.sync_interval_minutes,
        "approve_onboarding": integration.approve_onboarding,
        "approve_group_grants": integration.approve_group_grants,
        "require_reason": integration.require_reason,
        "approvals_required": integration.approvals_required,
        "privileged_policies": list(integration.privileged_policies or []),
        "privileged_groups": list(integration.privileged_groups or []),
        "rotate_every_days": integration.rotate_every_days,
        "review_every_days": integration.review_every_days,
        "created_by": integration.created_by,
        "created_at": _iso(integration.created_at),
        "last_sync_at": _iso(integration.last_sync_at),
        "last_sync_status": integration.last_sync_status,
        "health_status": integration.health_status,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# --- remove --------------------------------------------------------------------------------
def remove_integration(core: Core, name: str, *, actor: str, request_id: str | None = None) -> None:
    """Delete the integration, its sealed key and (by cascade) every row of its data.

    The audit log keeps an "integration.removed" event. `request_id`, when the removal runs as
    an approved request, keeps that request's row (detached from the integration) so its state
    can still be finished; every other request of the integration goes with it.
    """
    with core.sessions.begin() as session:
        integration = get_integration(session, name)
        integration_name, integration_id = integration.name, integration.id
        detail = _audit_detail(integration)
        busy = _running_requests(session, integration_id, besides=request_id)
        if busy:
            # Deleting them would strand a half-run change (an offboarding with access cut
            # but the user not deleted) with no request left to Retry.
            raise RequestConflict(
                f"Integration {integration_name} has {busy} request(s) running: "
                "remove it once they are done."
            )
        if request_id is not None:
            session.execute(
                update(Request)
                .where(Request.id == request_id, Request.integration_id == integration_id)
                .values(integration_id=None)
            )
        # A bulk DELETE lets the database's ON DELETE CASCADE remove the dependent rows.
        session.execute(delete(Integration).where(Integration.id == integration_id))
        audit.record_integration(
            session,
            integration_name,
            actor=actor,
            action="integration.removed",
            request_id=request_id,
            detail=detail,
        )
    core.aws.forget(integration_id)  # its assumed-role sessions go with it
    # Its sealed key and its requests' passwords must not stay readable in the store's files.
    purge(core.engine, SECRET_TABLES)


def _running_requests(session: Session, integration_id: int, *, besides: str | None) -> int:
    """How many approved or running requests touch the integration (an offboarding over
    several integrations names it only in its accounts)."""
    rows = session.scalars(select(Request).where(Request.state.in_(("approved", "running")))).all()
    return sum(
        1
        for row in rows
        if row.id != besides
        and (
            row.integration_id == integration_id
            or any(
                str(a.get("integration_id")) == str(integration_id)
                for a in (row.payload or {}).get("accounts") or []
                if isinstance(a, dict)
            )
        )
    )


# --- rotate --------------------------------------------------------------------------------
def rotate_keys(core: Core, *, actor: str = "cli") -> int:
    """Re-encrypt every stored secret with the first key; all or nothing. Returns the count.

    A secret that no configured key opens raises SecretUnreadable naming its integration, and
    nothing is changed.
    """
    box = core.require_box()
    with core.sessions.begin() as session:
        count = _rotate_integrations(session, box)
        count += _rotate_requests(session, box)
        audit.record(session, actor=actor, action="keys.rotated", detail={"count": count})
    # The old ciphertexts opened with the retired key: no copy of them may stay in the files.
    purge(core.engine, SECRET_TABLES)
    return count


def _rotate_integrations(session: Session, box: SecretBox) -> int:
    count = 0
    for integration in session.scalars(select(Integration).order_by(Integration.id)):
        if integration.credentials_ciphertext:
            integration.credentials_ciphertext = box.rotate(
                integration.credentials_ciphertext,
                what=f"the key of integration {integration.name}",
            )
            count += 1
        if integration.pending_credentials_ciphertext:
            integration.pending_credentials_ciphertext = box.rotate(
                integration.pending_credentials_ciphertext,
                what=f"the new key of integration {integration.name} (rotation under way)",
            )
            count += 1
        if integration.external_id_ciphertext:
            integration.external_id_ciphertext = box.rotate(
                integration.external_id_ciphertext,
                what=f"the external id of integration {integration.name}",
            )
            count += 1
    return count


def _rotate_requests(session: Session, box: SecretBox) -> int:
    count = 0
    query = (
        select(Request, Integration.name)
        .outerjoin(Integration, Request.integration_id == Integration.id)
        .where(Request.secret_ciphertext.is_not(None))
        .order_by(Request.created_at)
    )
    for request, integration_name in session.execute(query):
        assert request.secret_ciphertext is not None
        owner = f"integration {integration_name}" if integration_name else "no integration"
        request.secret_ciphertext = box.rotate(
            request.secret_ciphertext,
            what=f"the pending secret of request {request.id} ({owner})",
        )
        count += 1
    return count
