"""Starting an access review: claim the integration's one open campaign, read AWS's credential
report (one bulk call), freeze every account of the store within the prefix with its evidence
and flags, and open the campaign, in one transaction. Refused, naming it, while another campaign
of the integration is open; recorded as failed, with why, when the report cannot be had.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.services import approvals, credential_report, lifecycle, policy, reviews
from bot.services.container import Core
from bot.services.credential_report import CredentialReport, UserCredentials
from bot.services.errors import (
    IntegrationNotFound,
    InvalidInput,
    NotFound,
    Refused,
    RequestConflict,
    RoleUpError,
)
from bot.services.policy import Action, MemberOf
from bot.services.reviews import (
    DEFAULT_DUE_DAYS,
    FAILED,
    MAX_DUE_DAYS,
    NEVER_USED,
    NO_MFA,
    NOT_LINKED,
    OLD_KEY,
    OPEN,
    PRIVILEGED,
    STALE,
    STARTING,
    UNUSED_90,
    iso,
    shown,
)
from storage.models import (
    Account,
    AttachedPolicy,
    Group,
    Integration,
    Membership,
    ReviewCampaign,
    ReviewItem,
    utcnow,
)

logger = logging.getLogger(__name__)

Fetch = Callable[[Any], CredentialReport]


class ReviewStartFailed(RoleUpError):
    """The campaign could not start (the credential report, or the store); the message says
    why in one sentence."""


@dataclass(frozen=True)
class Started:
    campaign_id: int
    integration: str
    due_at: datetime
    items: int
    flagged: int
    reviewers: list[str]  # the integration's managers (Slack users or user groups)


def check_due_days(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DUE_DAYS:
        raise InvalidInput(f"A review is due in 1 to {MAX_DUE_DAYS} days.", field="days")
    return days


def request_start(
    core: Core,
    *,
    actor: str,
    integration_name: str | None,
    due_days: int = DEFAULT_DUE_DAYS,
    member_of: MemberOf | None = None,
    fetch: Fetch | None = None,
) -> Started:
    """`/roleup review start [integration] [days]`: a manager of the integration or an admin.
    Without a name, the one integration the actor manages (or is refused, naming them)."""
    check_due_days(due_days)
    integration = _chosen_integration(core, actor, integration_name, member_of)
    return start_campaign(
        core, integration_id=integration.id, actor=actor, due_days=due_days, fetch=fetch
    )


def _chosen_integration(
    core: Core, actor: str, name: str | None, member_of: MemberOf | None
) -> Integration:
    who = member_of or core.people.member_of
    with core.sessions() as session:
        rows = list(session.scalars(select(Integration).order_by(Integration.name)))
        for row in rows:
            session.expunge(row)
    if name is not None:
        found = [r for r in rows if r.name == name]
        if not found:
            raise IntegrationNotFound(f"There is no integration {name}.")
        _require_start(core, actor, found[0], who)
        return found[0]
    standing = core.people.standing(actor)
    mine = [
        r
        for r in rows
        if policy.can(actor, Action.START_REVIEW, r, core.settings.admins, who, standing).allowed
    ]
    if len(mine) == 1:
        return mine[0]
    if not mine:
        refused = policy.standing_refusal(standing)
        if refused is not None:
            raise Refused(
                refused.text, decision=refused, action=Action.START_REVIEW, integration=None
            )
        raise NotFound("You manage no integration to review: name one, or ask its managers.")
    names = ", ".join(r.name for r in mine)
    raise InvalidInput(f"Say which integration to review: {names}.")


def _require_start(core: Core, actor: str, integration: Integration, who: MemberOf) -> None:
    decision = policy.can(
        actor,
        Action.START_REVIEW,
        integration,
        core.settings.admins,
        who,
        core.people.standing(actor),
    )
    if not decision.allowed:
        message = decision.text or f"not allowed to start access reviews for {integration.name}"
        raise Refused(
            message, decision=decision, action=Action.START_REVIEW, integration=integration
        )


def start_campaign(
    core: Core,
    *,
    integration_id: int,
    actor: str,
    due_days: int = DEFAULT_DUE_DAYS,
    scheduled: bool = False,
    now: datetime | None = None,
    fetch: Fetch | None = None,
) -> Started:
    """Claim the integration's one open campaign, read the credential report (one bulk call),
    freeze every account of the store within the prefix and open the campaign. Refused, naming
    it, while another campaign of the integration is open; ReviewStartFailed when AWS's report
    cannot be had within the bounded wait (the campaign is recorded as failed, with why)."""
    check_due_days(due_days)
    now = now or utcnow()
    integration = lifecycle.load_integration(core, integration_id)
    campaign_id = _claim(core, integration, actor, now, now + timedelta(days=due_days), scheduled)
    try:
        iam = lifecycle.iam_client(core, integration, actor=actor)
        report = (fetch or credential_report.fetch)(iam)
        counts = _freeze(core, campaign_id, integration, report, now)
    except Exception as exc:
        reason = (
            exc.user_message
            if isinstance(exc, RoleUpError)
            else f"an unexpected error ({type(exc).__name__})"
        )
        if not isinstance(exc, RoleUpError):
            logger.exception("starting access review %s failed", campaign_id)
        _fail(core, campaign_id, integration.name, actor, reason)
        raise ReviewStartFailed(
            f"The access review of {integration.name} could not start: {reason}"
        ) from None
    items, flagged = counts
    return Started(
        campaign_id,
        integration.name,
        now + timedelta(days=due_days),
        items,
        flagged,
        list(integration.managers or []),
    )


def _claim(
    core: Core,
    integration: Integration,
    actor: str,
    now: datetime,
    due_at: datetime,
    scheduled: bool,
) -> int:
    """Insert the campaign as starting; the unique `open_for` refuses a second open one."""
    try:
        with core.sessions.begin() as session:
            row = ReviewCampaign(
                integration_id=integration.id,
                integration=integration.name,
                state=STARTING,
                open_for=integration.id,
                started_by=actor,
                scheduled=scheduled,
                started_at=now,
                due_at=due_at,
            )
            session.add(row)
            session.flush()
            return int(row.id)
    except IntegrityError:
        pass
    with core.sessions() as session:
        other = session.scalar(
            select(ReviewCampaign).where(ReviewCampaign.open_for == integration.id)
        )
        if other is None:  # closed in between: one more try is enough
            return _claim(core, integration, actor, now, due_at, scheduled)
        word = "is still starting" if other.state == STARTING else "is still open"
        raise RequestConflict(
            f"Access review #{other.id} of {integration.name} {word} "
            f"(due {shown(other.due_at)}): close it before starting another."
        )


def _fail(core: Core, campaign_id: int, integration: str, actor: str, reason: str) -> None:
    with core.sessions.begin() as session:
        session.execute(
            update(ReviewCampaign)
            .where(ReviewCampaign.id == campaign_id, ReviewCampaign.state == STARTING)
            .values(state=FAILED, open_for=None, failure=reason[:1000], closed_at=utcnow())
        )
        reviews.record_campaign(
            session,
            campaign_id,
            integration,
            actor=actor,
            action="review.start_failed",
            outcome="error",
            error=reason[:500],
        )


@dataclass
class _Frozen:
    user_name: str
    user_id: str | None
    arn: str | None
    slack_user_id: str | None
    created: datetime | None = None
    groups: set[str] = field(default_factory=set)
    policies: set[str] = field(default_factory=set)
    inline: list[str] = field(default_factory=list)


def _accounts(session: Session, integration_id: int) -> dict[str, _Frozen]:
    """Every account the store holds for the integration (the sync keeps only the prefix's)."""
    found = {
        name: _Frozen(name, user_id, arn, slack, created, inline=sorted(inline or []))
        for name, user_id, arn, slack, created, inline in session.execute(
            select(
                Account.user_name,
                Account.user_id,
                Account.arn,
                Account.slack_user_id,
                Account.created_at,
                Account.inline_policies,
            ).where(Account.integration_id == integration_id)
        )
    }
    for name, group in session.execute(
        select(Account.user_name, Group.name)
        .join(Membership, Membership.account_id == Account.id)
        .join(Group, Group.id == Membership.group_id)
        .where(Account.integration_id == integration_id)
    ):
        found[name].groups.add(group)
    for name, policy_name in session.execute(
        select(Account.user_name, AttachedPolicy.policy_name)
        .join(AttachedPolicy, AttachedPolicy.account_id == Account.id)
        .where(Account.integration_id == integration_id)
    ):
        found[name].policies.add(policy_name)
    return found


def _freeze(
    core: Core,
    campaign_id: int,
    integration: Integration,
    report: CredentialReport,
    now: datetime,
) -> tuple[int, int]:
    """Write one item per account and open the campaign, in one transaction."""
    with core.sessions.begin() as session:
        row = session.get(Integration, integration.id)
        if row is None:
            raise IntegrationNotFound("That integration no longer exists.")
        privileges = approvals.privileges_of(session, [row])
        accounts = _accounts(session, integration.id)
        items = []
        for name in sorted(accounts):
            account = accounts[name]
            creds = report.users.get(name)
            if creds is not None and not _same_user(account, creds):
                creds = None  # another user of that name since the last sync: no evidence
            flags = flags_for(account, creds, privileges, now)
            items.append(
                {
                    "campaign_id": campaign_id,
                    "user_name": name,
                    "user_id": account.user_id,
                    "arn": account.arn,
                    "slack_user_id": account.slack_user_id,
                    "groups": sorted(account.groups),
                    "policies": sorted(account.policies),
                    "inline_policies": account.inline,
                    "evidence": evidence_of(creds),
                    "flags": flags,
                    "flagged": bool(flags),
                    "removed_groups": [],
                }
            )
        for start in range(0, len(items), 1000):
            session.execute(insert(ReviewItem), items[start : start + 1000])
        flagged = sum(1 for item in items if item["flagged"])
        session.execute(
            update(ReviewCampaign)
            .where(ReviewCampaign.id == campaign_id, ReviewCampaign.state == STARTING)
            .values(
                state=OPEN,
                items_total=len(items),
                report_generated_at=report.generated_at,
            )
        )
        reviews.record_campaign(
            session,
            campaign_id,
            integration.name,
            actor=_actor_of(session, campaign_id),
            action="review.started",
            items=len(items),
            flagged=flagged,
            due_at=iso(_due_of(session, campaign_id)),
            report_generated_at=iso(report.generated_at),
            report_rows_dropped=report.dropped,
        )
    return len(items), flagged


def _same_user(account: _Frozen, creds: UserCredentials) -> bool:
    """The report's row is of the synced user: the same ARN and, when both are known, the
    same creation time (a user deleted and re-created under its name keeps the ARN; the
    report gives whole seconds)."""
    if account.arn and creds.arn != account.arn:
        return False
    if account.created is None or creds.created is None:
        return True
    return abs((account.created - creds.created).total_seconds()) < 1


def _actor_of(session: Session, campaign_id: int) -> str:
    return str(
        session.scalar(select(ReviewCampaign.started_by).where(ReviewCampaign.id == campaign_id))
    )


def _due_of(session: Session, campaign_id: int) -> datetime | None:
    return session.scalar(select(ReviewCampaign.due_at).where(ReviewCampaign.id == campaign_id))


def flags_for(
    account: _Frozen,
    creds: UserCredentials | None,
    privileges: policy.Privileges,
    now: datetime,
) -> list[str]:
    """What a reviewer should look at first; evidence missing from the report flags nothing
    it cannot show."""
    flags = []
    if creds is not None:
        last = creds.last_used
        if last is None:
            flags.append(NEVER_USED)
        elif now - last > STALE:
            flags.append(UNUSED_90)
        if creds.password_enabled and not creds.mfa_active:
            flags.append(NO_MFA)
        if any(k.active and k.last_rotated and now - k.last_rotated > STALE for k in creds.keys):
            flags.append(OLD_KEY)
    if not account.slack_user_id:
        flags.append(NOT_LINKED)
    if any(privileges.group(g) for g in account.groups) or any(
        privileges.policy(p) for p in account.policies
    ):
        flags.append(PRIVILEGED)
    return flags


def evidence_of(creds: UserCredentials | None) -> dict[str, Any]:
    if creds is None:
        return {"in_report": False}
    return {
        "in_report": True,
        "created": iso(creds.created),
        "password_enabled": creds.password_enabled,
        "password_last_used": iso(creds.password_last_used),
        "password_last_changed": iso(creds.password_last_changed),
        "mfa_active": creds.mfa_active,
        "keys": [
            {
                "active": k.active,
                "last_rotated": iso(k.last_rotated),
                "last_used": iso(k.last_used),
            }
            for k in creds.keys
        ],
        "last_used": iso(creds.last_used),
    }
