"""The daily credential health check: does each integration's key or role still work, is the
key getting old, and may it still do what the integration's mode needs?

Writes Integration.health_status / health_detail / health_checked_at and returns what changed,
so the caller can tell the approvals channel when an integration turns bad.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bot.services import audit
from bot.services.acting import SCHEDULER
from bot.services.aws import call
from bot.services.container import Core
from bot.services.errors import AwsUnavailable, RoleUpError, Throttled
from bot.services.integration_check import check_credentials
from bot.services.integration_handle import IntegrationHandle
from storage.models import Integration, utcnow

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

logger = logging.getLogger(__name__)

OK = "ok"
WARNING = "warning"  # works, but needs attention (an old key)
FAILING = "failing"  # does not work, or may no longer do what its mode needs
UNKNOWN = "unknown"  # AWS could not be asked (throttled, unreachable): no verdict today

# AWS's own advice (IAM best practices, the security hub control IAM.3) is to rotate at 90 days.
KEY_MAX_AGE_DAYS = 90


@dataclass(frozen=True)
class Health:
    status: str
    detail: str
    principal_arn: str | None = None  # who RoleUp signs in as, when the check could tell


@dataclass(frozen=True)
class HealthChange:
    """An integration whose verdict changed; `turned_bad` when it went from fine to not."""

    integration: str
    approvals_channel: str | None
    before: str | None
    after: Health

    @property
    def turned_bad(self) -> bool:
        return self.after.status in (WARNING, FAILING) and self.before != self.after.status


def check_all(core: Core, *, now: datetime | None = None) -> list[HealthChange]:
    """Check every integration, record each verdict, return those whose status changed."""
    with core.sessions() as session:
        ids = list(session.scalars(select(Integration.id).order_by(Integration.id)))
    changes = []
    for integration_id in ids:
        change = check_one(core, integration_id, now=now)
        if change is not None:
            changes.append(change)
    return changes


def check_one(
    core: Core, integration_id: int, *, now: datetime | None = None
) -> HealthChange | None:
    now = now or utcnow()
    with core.sessions() as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            return None
        session.expunge(integration)
    health = assess(core, integration, now=now)
    return _record(core, integration, health, now)


def assess(core: Core, integration: Integration, *, now: datetime) -> Health:
    """The verdict for one integration; AWS is asked, the store is not written.

    The same check as adding an integration (bot.services.integration_check): STS GetCallerIdentity,
    an IAM read, and the policy simulator for the actions the integration's mode needs.
    """
    try:
        credentials = _validation_args(core, integration)
        result = check_credentials(
            core,
            **credentials,
            read_only=integration.read_only,
            path_prefix=integration.path_prefix,
            actor=SCHEDULER,
        )
        age = None
        if credentials.get("access_key_id"):
            iam = IntegrationHandle(core, integration, actor=SCHEDULER.who).iam
            age = key_age_days(credentials["access_key_id"], iam, result.arn, now)
    except (Throttled, AwsUnavailable) as err:
        return Health(UNKNOWN, err.user_message)
    except RoleUpError as err:
        return Health(FAILING, err.user_message)
    except Exception as err:  # e.g. a role that cannot be assumed: botocore's own error
        logger.info("health check of %s failed: %s", integration.name, type(err).__name__)
        return Health(FAILING, f"The credentials could not be used ({type(err).__name__}).")
    if result.missing:
        return Health(
            FAILING,
            "The credentials lack permissions RoleUp needs for a "
            f"{'read-only' if integration.read_only else 'read/write'} integration: "
            + ", ".join(result.missing)
            + ".",
        )
    if age is not None and age > KEY_MAX_AGE_DAYS:
        return Health(
            WARNING,
            f"The access key is {age} days old (rotate keys every {KEY_MAX_AGE_DAYS} days).",
        )
    known_age = f" The key is {age} days old." if age is not None else ""
    principal = integration.role_arn or result.arn
    return Health(OK, "The credentials work." + known_age, principal_arn=principal)


def _validation_args(core: Core, integration: Integration) -> dict[str, str | None]:
    """The integration's credentials as check_credentials takes them (decrypted in memory
    only, for this call)."""
    box = core.require_box()
    if integration.credentials_ciphertext:
        pair = core.aws.credentials_for(integration, box)  # decrypts; no AWS call for a key
        return {
            "access_key_id": pair["aws_access_key_id"],
            "secret_access_key": pair["aws_secret_access_key"],
        }
    external_id = None
    if integration.external_id_ciphertext:
        external_id = box.decrypt(
            integration.external_id_ciphertext,
            what=f"the external id of integration {integration.name}",
        )
    return {"role_arn": integration.role_arn, "external_id": external_id}


def key_age_days(
    own_key_id: str | None, iam: IAMClient, caller_arn: str, now: datetime
) -> int | None:
    """Age of the integration's access key, when the key belongs to the user it signs in as
    and that user may list its own keys; None for roles or when IAM will not say."""
    if own_key_id is None or ":user/" not in caller_arn:
        return None
    user_name = caller_arn.rsplit("/", 1)[1]
    try:
        keys: list[Any] = call(
            iam.list_access_keys, "list the integration's access keys", UserName=user_name
        )["AccessKeyMetadata"]
    except RoleUpError:
        return None
    for key in keys:
        if key.get("AccessKeyId") == own_key_id and key.get("CreateDate"):
            return (now - key["CreateDate"]).days
    return None


def _record(
    core: Core, integration: Integration, health: Health, now: datetime
) -> HealthChange | None:
    with core.sessions.begin() as session:
        row = session.get(Integration, integration.id)
        if row is None:  # removed while we were asking AWS
            return None
        before = row.health_status
        if health.status == UNKNOWN:
            # No verdict: keep yesterday's, just note that today's check could not run.
            row.health_detail = health.detail
            row.health_checked_at = now
            return None
        if health.principal_arn and not row.principal_arn:
            # Integrations added before RoleUp recorded its own principal learn it here.
            row.principal_arn = health.principal_arn
        row.health_status, row.health_detail, row.health_checked_at = (
            health.status,
            health.detail,
            now,
        )
        if before == health.status:
            return None
        audit.record_integration(
            session,
            row.name,
            actor="scheduler",
            action="integration.health",
            outcome="ok" if health.status == OK else health.status,
            detail={"before": before, "after": health.status, "reason": health.detail},
        )
        return HealthChange(row.name, row.approvals_channel, before, health)
