"""What adding an integration asks for: its own module so that both bot.services.integrations
(which saves it) and bot.services.integration_check (which checks it with AWS) can import it at the
top without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IntegrationSpec:
    """What the Slack modal and `roleup integrations add` ask for."""

    name: str
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    read_only: bool = False
    path_prefix: str = "/"
    managers: list[str] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)
    approvals_channel: str | None = None
    sync_interval_minutes: int = 15
    approve_onboarding: bool = False
    approve_group_grants: bool = False
    require_reason: bool = False
    approvals_required: int = 1
    # Who may give themselves break-glass access (Slack users or user groups).
    breakglass: list[str] = field(default_factory=list)
    # Rotate RoleUp's own access key every this many days (None: never by itself).
    rotate_every_days: int | None = None
    # Start an access review every this many days (bot.services.reviews); None: no schedule.
    review_every_days: int | None = None

    @property
    def uses_key(self) -> bool:
        return self.access_key_id is not None


@dataclass(frozen=True)
class Validated:
    """What validating the credentials learned: the AWS account, and the principal RoleUp signs
    in as (never to be offboarded or regrouped through RoleUp)."""

    account_id: str | None
    principal_arn: str | None = None
