"""The daily credential health check: does each integration's key or role still work, is the
key getting old, and may it still do what the integration's mode needs?

Writes Integration.health_status / health_detail / health_checked_at and returns what changed,
so the caller can tell the approvals channel when an integration turns bad.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bot.services import audit
from bot.services.aws import call
from bot.services.container import Core
from bot.services.errors import AwsAccessDenied, AwsUnavailable, RoleUpError, Throttled
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

PermissionProbe = Callable[[Core, Integration, "IAMClient"], list[str]]


@dataclass(frozen=True)
class Health:
    status: str
    detail: str


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


def check_all(
    core: Core, *, now: datetime | None = None, probe: PermissionProbe | None = None
) -> list[HealthChange]:
    """Check every integration, record each verdict, return those whose status changed."""
    with core.sessions() as session:
        ids = list(session.scalars(select(Integration.id).order_by(Integration.id)))
    changes = []
    for integration_id in ids:
        change = check_one(core, integration_id, now=now, probe=probe)
        if change is not None:
            changes.append(change)
    return changes


def check_one(
    core: Core,
    integration_id: int,
    *,
    now: datetime | None = None,
    probe: PermissionProbe | None = None,
) -> HealthChange | None:
    now = now or utcnow()
    with core.sessions() as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            return None
        session.expunge(integration)
    health = assess(core, integration, now=now, probe=probe or probe_permissions)
    return _record(core, integration, health, now)


def assess(
    core: Core, integration: Integration, *, now: datetime, probe: PermissionProbe
) -> Health:
    """The verdict for one integration; AWS is asked, the store is not written."""
    try:
        box = core.require_box()
        iam, sts = core.aws.iam_for(integration, box), core.aws.sts_for(integration, box)
        identity = call(sts.get_caller_identity, "check the integration's credentials")
        missing = probe(core, integration, iam)
        own_key = None
        if integration.credentials_ciphertext:  # decrypting only, no AWS call
            own_key = core.aws.credentials_for(integration, box)["aws_access_key_id"]
        age = key_age_days(own_key, iam, str(identity.get("Arn", "")), now)
    except (Throttled, AwsUnavailable) as err:
        return Health(UNKNOWN, err.user_message)
    except RoleUpError as err:
        return Health(FAILING, err.user_message)
    except Exception as err:  # e.g. a role that cannot be assumed: botocore's own error
        logger.info("health check of %s failed: %s", integration.name, type(err).__name__)
        return Health(FAILING, f"The credentials could not be used ({type(err).__name__}).")
    if missing:
        return Health(FAILING, "The credentials may no longer " + "; ".join(missing) + ".")
    if age is not None and age > KEY_MAX_AGE_DAYS:
        return Health(
            WARNING,
            f"The access key is {age} days old (rotate keys every {KEY_MAX_AGE_DAYS} days).",
        )
    return Health(
        OK, "The credentials work." + (f" The key is {age} days old." if age is not None else "")
    )


def probe_permissions(core: Core, integration: Integration, iam: IAMClient) -> list[str]:
    """What the credentials can no longer do that the integration's mode needs.

    Reading IAM (listing users and groups within the prefix) is needed in every mode. Writes
    cannot be tried without changing the account, so Read/Write keys are judged by their reads
    here and find out about a lost write permission at the first write, with a clear error.
    """
    missing = []
    prefix = integration.path_prefix or "/"
    for what, operation, kwargs in (
        ("list IAM users", iam.list_users, {"PathPrefix": prefix, "MaxItems": 1}),
        ("list IAM groups", iam.list_groups, {"MaxItems": 1}),
    ):
        try:
            call(operation, what, **kwargs)
        except AwsAccessDenied:
            missing.append(what)
    return missing


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
        row.health_status, row.health_detail, row.health_checked_at = (
            health.status,
            health.detail,
            now,
        )
        if before == health.status:
            return None
        audit.record(
            session,
            actor="scheduler",
            action="integration.health",
            target=row.name,
            integration=row.name,
            outcome="ok" if health.status == OK else health.status,
            detail={"before": before, "after": health.status, "reason": health.detail},
        )
        return HealthChange(row.name, row.approvals_channel, before, health)
