"""Plain, frozen copies of store rows for the Slack surfaces: what handlers read, never query.

A record's fields carry the names of the row's columns, so code that reads `row.name` reads
`record.name` alike; it is built inside the service's session from the loaded row. Secret
columns (sealed key pairs, the external id) are never copied: a record says only whether the
integration holds a key (`uses_key`).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, TypeVar

from storage.models import Integration

Record = TypeVar("Record")


def from_row(cls: type[Record], row: object, **derived: Any) -> Record:
    """A `cls` whose fields are the row's attributes of the same name (lists and dicts
    copied, so the record shares nothing with the row), and `derived` for the rest."""
    values: dict[str, Any] = dict(derived)
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name not in values:
            value = getattr(row, field.name)
            values[field.name] = value.copy() if isinstance(value, list | dict) else value
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class IntegrationInfo:
    """An integration's settings, health and last sync: every column but the secret ones."""

    id: int
    name: str
    read_only: bool
    path_prefix: str
    access_key_hint: str | None
    role_arn: str | None
    aws_account_id: str | None
    managers: list[str]
    approvers: list[str]
    approvals_channel: str | None
    sync_interval_minutes: int
    approve_onboarding: bool
    approve_group_grants: bool
    require_reason: bool
    approvals_required: int
    privileged_policies: list[str]
    privileged_groups: list[str]
    breakglass: list[str]
    review_every_days: int | None
    principal_arn: str | None
    rotate_every_days: int | None
    credentials_changed_at: datetime | None
    retiring_key_id: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    last_sync_at: datetime | None
    last_sync_status: str | None
    last_sync_error: str | None
    health_status: str | None
    health_detail: str | None
    health_checked_at: datetime | None
    # Whether RoleUp reaches AWS with a stored access key (else by assuming `role_arn`).
    uses_key: bool

    @classmethod
    def of(cls, row: Integration) -> IntegrationInfo:
        return from_row(cls, row, uses_key=uses_key(row))


def uses_key(integration: Integration | IntegrationInfo) -> bool:
    """Whether the integration reaches AWS with a stored access key."""
    if isinstance(integration, IntegrationInfo):
        return integration.uses_key
    return integration.credentials_ciphertext is not None
