"""SQLAlchemy 2 models of all RoleUp keeps: integrations, the IAM snapshot, requests, audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _of_integration() -> MappedColumn[Any]:
    """The integration a row belongs to: removing the integration removes the row."""
    return mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), index=True)


class EndsInTime:
    """How a time-bound row (a grant, an account expiry) ends: one process claims it, a failed
    end is retried after `next_attempt_at`, and the end is recorded with its reason."""

    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(200))
    # The request ending it (an account expiry's is kept across retries: it resumes).
    end_request_id: Mapped[str | None] = mapped_column(String(36))
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None]

    @staticmethod
    def ended(now: datetime, reason: str, request_id: str | None) -> dict[str, Any]:
        """The columns an end sets, whichever way the row ends."""
        return {
            "ended_at": now,
            "end_reason": reason[:200],
            "end_request_id": request_id,
            "claimed_by": None,
            "claimed_until": None,
        }


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class Integration(Base):
    """One AWS account's IAM, reached with an API key or by assuming a role."""

    __tablename__ = "integrations"
    # Ids are never reused (AUTOINCREMENT on SQLite; PostgreSQL's sequences never go back), so
    # an id kept anywhere can never come to mean a later integration.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    path_prefix: Mapped[str] = mapped_column(String(512), default="/")
    # The access key id is shown masked; the pair (id + secret) is only ever stored encrypted.
    access_key_hint: Mapped[str | None] = mapped_column(String(32))
    credentials_ciphertext: Mapped[str | None] = mapped_column(Text)
    role_arn: Mapped[str | None] = mapped_column(String(2048))
    external_id_ciphertext: Mapped[str | None] = mapped_column(Text)
    aws_account_id: Mapped[str | None] = mapped_column(String(12))
    managers: Mapped[list[str]] = mapped_column(default=list)
    approvers: Mapped[list[str]] = mapped_column(default=list)
    approvals_channel: Mapped[str | None] = mapped_column(String(32))
    sync_interval_minutes: Mapped[int] = mapped_column(Integer, default=15)
    approve_onboarding: Mapped[bool] = mapped_column(Boolean, default=False)
    approve_group_grants: Mapped[bool] = mapped_column(Boolean, default=False)
    # Every request must say why (README, "Reasons and tickets").
    require_reason: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Distinct approvers an offboarding, a privileged grant or this integration's removal needs.
    approvals_required: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # A grant of one of these (managed policies by name or ARN, groups by name) always needs an
    # approver; groups with one of these policies attached count too (known from sync).
    privileged_policies: Mapped[list[str]] = mapped_column(
        default=lambda: ["AdministratorAccess", "IAMFullAccess", "PowerUserAccess"]
    )
    privileged_groups: Mapped[list[str]] = mapped_column(default=list)
    # Who may give themselves a break-glass grant (Slack user or user-group ids, like approvers).
    breakglass: Mapped[list[str]] = mapped_column(default=list, server_default="[]")
    # Start an access review every this many days (None: only when someone starts one).
    review_every_days: Mapped[int | None] = mapped_column(Integer)
    # RoleUp's own principal (the IAM user whose key it holds, or the role it assumes), read at
    # validation: never offboarded or regrouped through RoleUp.
    principal_arn: Mapped[str | None] = mapped_column(String(2048))
    # RoleUp's own access key is rotated every this many days (None: never by itself).
    rotate_every_days: Mapped[int | None] = mapped_column(Integer)
    # When the stored key or role last changed (added, replaced or rotated).
    credentials_changed_at: Mapped[datetime | None]
    # A rotation under way (bot.services.key_rotation): the new key pair, sealed, until it is
    # validated and switched to; then the id of the old key until it is deleted in IAM. A key
    # id is not a secret (CloudTrail shows it), the pair is.
    pending_credentials_ciphertext: Mapped[str | None] = mapped_column(Text)
    retiring_key_id: Mapped[str | None] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_sync_at: Mapped[datetime | None]
    last_sync_status: Mapped[str | None] = mapped_column(String(16))
    last_sync_error: Mapped[str | None] = mapped_column(Text)
    health_status: Mapped[str | None] = mapped_column(String(16))
    health_detail: Mapped[str | None] = mapped_column(Text)
    health_checked_at: Mapped[datetime | None]

    accounts: Mapped[list[Account]] = relationship(
        back_populates="integration", cascade="all, delete-orphan", passive_deletes=True
    )


class Account(Base):
    """An IAM user as last seen by a sync (or created by this app)."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("integration_id", "user_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = _of_integration()
    user_name: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(128))
    arn: Mapped[str | None] = mapped_column(String(2048))
    path: Mapped[str] = mapped_column(String(512), default="/")
    created_at: Mapped[datetime | None]
    password_last_used: Mapped[datetime | None]
    slack_user_id: Mapped[str | None] = mapped_column(String(32), index=True)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    inline_policies: Mapped[list[str]] = mapped_column(default=list)
    last_seen_at: Mapped[datetime | None]

    integration: Mapped[Integration] = relationship(back_populates="accounts")
    memberships: Mapped[list[Membership]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("integration_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = _of_integration()
    name: Mapped[str] = mapped_column(String(128))
    group_id: Mapped[str | None] = mapped_column(String(128))
    arn: Mapped[str | None] = mapped_column(String(2048))
    path: Mapped[str] = mapped_column(String(512), default="/")


class Membership(Base):
    __tablename__ = "memberships"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class AttachedPolicy(Base):
    """A managed policy attached to a user or a group."""

    __tablename__ = "attached_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = _of_integration()
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    policy_arn: Mapped[str] = mapped_column(String(2048))
    policy_name: Mapped[str] = mapped_column(String(128))


class ManagedPolicy(Base):
    """A managed policy of the account that can be granted (the onboarding modal's choices)."""

    __tablename__ = "managed_policies"
    __table_args__ = (UniqueConstraint("integration_id", "arn"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = _of_integration()
    arn: Mapped[str] = mapped_column(String(2048))
    name: Mapped[str] = mapped_column(String(128), index=True)
    aws_managed: Mapped[bool] = mapped_column(Boolean, default=False)


class Request(Base):
    """Something a person asked for, with its approval state machine.

    States: pending -> approved | denied | expired | cancelled;
    approved -> running -> done | failed.
    Moves are made with conditional UPDATEs so a request executes at most once.
    """

    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    integration_id: Mapped[int | None] = _of_integration()
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Only a chosen password waiting for approval (public link) lives here, encrypted.
    secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    requester: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    expires_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    steps: Mapped[list[Any]] = mapped_column(JSON, default=list)
    outcome: Mapped[str | None] = mapped_column(Text)
    message_channel: Mapped[str | None] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    response_url: Mapped[str | None] = mapped_column(Text)
    # The process running it holds a lease, renewed on every AWS call; recovery takes over only
    # an expired lease.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    # Why it was asked (free text) and a ticket (an https:// link or an id like SEC-123).
    reason: Mapped[str | None] = mapped_column(Text)
    ticket: Mapped[str | None] = mapped_column(String(512))
    # Distinct approvals it needs, fixed when it is made (what was asked is what is approved).
    approvals_required: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Loaded with the row: the approval message is rendered from the row alone.
    approvals: Mapped[list[RequestApproval]] = relationship(
        lazy="selectin",
        order_by="RequestApproval.decided_at",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class RequestApproval(Base):
    """One approver's Approve of a request that needs several: one row per person (the primary
    key), so a double click counts once and N distinct rows are what moves it to approved."""

    __tablename__ = "request_approvals"

    request_id: Mapped[str] = mapped_column(
        ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True
    )
    approver: Mapped[str] = mapped_column(String(64), primary_key=True)
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Append-only record of who did what to what, when, and how it ended."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(512))
    # A name, not a key: events outlive the integration they speak of.
    integration: Mapped[str | None] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    request_id: Mapped[str | None] = mapped_column(String(36), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Invite(Base):
    """A public onboarding link; only the SHA-256 of its token is kept."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    integration_id: Mapped[int] = _of_integration()
    slack_user_id: Mapped[str | None] = mapped_column(String(32))
    groups: Mapped[list[str]] = mapped_column(default=list)
    policies: Mapped[list[str]] = mapped_column(default=list)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    request_id: Mapped[str | None] = mapped_column(String(36))
    # Wrong answers on the public page; at the limit the invite is locked and its creator told.
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_at: Mapped[datetime | None]
    # How long its groups last once the answer runs (bot.services.grants.Term); none: for good.
    grant_seconds: Mapped[int | None] = mapped_column(Integer)
    grant_until: Mapped[datetime | None]
    # The creator's reason and ticket: the invitee is not asked, the request carries these.
    reason: Mapped[str | None] = mapped_column(Text)
    ticket: Mapped[str | None] = mapped_column(String(512))
    # When the account its answer makes is offboarded by itself (bot.services.account_expiry).
    account_expires_at: Mapped[datetime | None]


class Grant(EndsInTime, Base):
    """A group membership given for a while: RoleUp removes exactly it at `ends_at`.

    States: active -> ending (claimed by one process) -> ended; a failed removal goes back to
    active with `failures` counted and `next_attempt_at` set.
    """

    __tablename__ = "grants"
    __table_args__ = (
        Index("ix_grants_state_ends_at", "state", "ends_at"),
        # An account's grants: /accounts reads each listed group's end through it (without
        # it SQLite walked every active grant for each of a page's rows, bench/ack.py).
        Index(
            "ix_grants_account_group",
            "integration_id",
            "user_name",
            "group_name",
            "state",
            "ends_at",
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = _of_integration()
    user_name: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(128))  # the pinned IAM UserId
    group_name: Mapped[str] = mapped_column(String(128))
    slack_user_id: Mapped[str | None] = mapped_column(String(32))  # the person, when linked
    requester: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(36))  # the request that granted it
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="active")
    reminded_24h_at: Mapped[datetime | None]
    reminded_1h_at: Mapped[datetime | None]
    # Break-glass: given with no approver by someone on the integration's list, for at most 4 h;
    # announced to the approvers (again every 4 h, claimed by `announced_at`) until one of them
    # acknowledges it.
    breakglass: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    reason: Mapped[str | None] = mapped_column(String(500))
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None]
    announced_at: Mapped[datetime | None]


class ReviewCampaign(Base):
    """An access review of one integration's accounts (bot.services.reviews).

    States: starting -> open -> closed, or starting -> failed. `open_for` holds the
    integration's id while the campaign is starting or open, and its unique constraint is what
    refuses a second open campaign for the same integration, across every process.
    """

    __tablename__ = "review_campaigns"
    __table_args__ = (
        Index("ix_review_campaigns_state_due_at", "state", "due_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = _of_integration()
    integration: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="starting")
    open_for: Mapped[int | None] = mapped_column(Integer, unique=True)
    started_by: Mapped[str] = mapped_column(String(64))
    scheduled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    started_at: Mapped[datetime]
    due_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    # When AWS generated the credential report the evidence comes from.
    report_generated_at: Mapped[datetime | None]
    failure: Mapped[str | None] = mapped_column(Text)
    items_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ReviewItem(Base):
    """One account of a campaign, frozen when the campaign started, and its one decision."""

    __tablename__ = "review_items"
    __table_args__ = (
        UniqueConstraint("campaign_id", "user_name"),
        Index("ix_review_items_campaign_decision", "campaign_id", "decision"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("review_campaigns.id", ondelete="CASCADE"))
    user_name: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(128))
    arn: Mapped[str | None] = mapped_column(String(2048))
    slack_user_id: Mapped[str | None] = mapped_column(String(32))
    groups: Mapped[list[str]] = mapped_column(default=list)
    policies: Mapped[list[str]] = mapped_column(default=list)
    inline_policies: Mapped[list[str]] = mapped_column(default=list)
    # Console and key use, MFA, key ages, from the credential report (bot.services.reviews).
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    flags: Mapped[list[str]] = mapped_column(default=list)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    decision: Mapped[str | None] = mapped_column(String(16))  # keep | remove | offboard
    note: Mapped[str | None] = mapped_column(Text)
    removed_groups: Mapped[list[str]] = mapped_column(default=list)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]
    request_id: Mapped[str | None] = mapped_column(String(36))  # the request it raised
    # "gone since the campaign started", or what changed outside RoleUp (from a sync).
    drift: Mapped[str | None] = mapped_column(String(500))
    drift_at: Mapped[datetime | None]


class AccountExpiry(EndsInTime, Base):
    """An account onboarded until a date: RoleUp offboards it at `expires_at` (00:00 UTC of
    that date) without a new approval, the date having been approved with the account.

    States: scheduled -> ending (claimed by one process) -> ended; a failed offboarding goes
    back to scheduled with `failures` counted and `next_attempt_at` set.
    """

    __tablename__ = "account_expiries"
    __table_args__ = (
        Index("ix_account_expiries_state_expires_at", "state", "expires_at"),
        # An account's expiry: /accounts reads it for each of a page's accounts.
        Index("ix_account_expiries_account", "integration_id", "user_name"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = _of_integration()
    user_name: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(128))  # the pinned IAM UserId
    slack_user_id: Mapped[str | None] = mapped_column(String(32))  # the person, when linked
    requester: Mapped[str] = mapped_column(String(64))  # who asked for the account
    request_id: Mapped[str | None] = mapped_column(String(36))  # the onboarding request
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="scheduled")
    reminded_7d_at: Mapped[datetime | None]
    reminded_1d_at: Mapped[datetime | None]


class JobClaim(Base):
    """One row per (scheduled job, time slot): whoever inserts it first runs the job."""

    __tablename__ = "job_claims"
    __table_args__ = (UniqueConstraint("job", "slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(128))
    slot: Mapped[int] = mapped_column(Integer)
    instance: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)


class RateLimitHit(Base):
    """Hits of one client key in one fixed window, counted in the store so every instance
    shares the same limit."""

    __tablename__ = "rate_limit_hits"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)
    hits: Mapped[int] = mapped_column(Integer, default=0)


class SlackDelivery(Base):
    """Keys of Slack deliveries already handled, so a retry never runs work twice."""

    __tablename__ = "slack_deliveries"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
