"""An integration's approval settings as the policy functions read them, without a store."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Conf:
    name: str = "prod"
    managers: list[str] = field(default_factory=lambda: ["UMANAGER"])
    approvers: list[str] = field(default_factory=lambda: ["UAPPROVER", "SAPPROVERS"])
    approvals_channel: str | None = "CAPPROVALS"
    approve_onboarding: bool = False
    approve_group_grants: bool = False
    require_reason: bool = False
    approvals_required: int = 1
