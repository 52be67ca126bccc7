"""Filing requests in tests the short way: a kind name and the payload's fields, turned into the
typed payload the approvals service takes (the integration's name is read from the store)."""

from __future__ import annotations

from typing import Any

from bot.services import approvals
from bot.services.container import Core
from bot.services.request_kinds import (
    OffboardAccount,
    OffboardPayload,
    OnboardPayload,
    Payload,
    RemoveIntegrationPayload,
    SetGroupsPayload,
)
from storage.models import Integration, Request


def typed_payload(
    core: Core, kind: str, integration_id: int | None, fields: dict[str, Any]
) -> Payload:
    name = _name(core, integration_id)
    if kind in ("onboard", "invite_onboard"):
        invite = fields.get("invite_id", 0 if kind == "invite_onboard" else None)
        return OnboardPayload(
            integration_id=int(integration_id or 0),
            integration=name,
            username=fields["username"],
            groups=list(fields.get("groups", [])),
            policies=list(fields.get("policies", [])),
            slack_user_id=fields.get("slack_user_id"),
            created_by=fields.get("created_by", ""),
            invite_id=invite,
            invite_creator=fields.get("created_by") if kind == "invite_onboard" else None,
        )
    if kind == "offboard":
        return OffboardPayload(
            target=fields.get("target", ""),
            accounts=[
                OffboardAccount(
                    integration_id=int(a["integration_id"]),
                    integration=a.get("integration") or _name(core, int(a["integration_id"])),
                    user_name=a["user_name"],
                    user_id=a.get("user_id"),
                    plan=a.get("plan") or {},
                )
                for a in fields.get("accounts", [])
            ],
        )
    if kind == "set_groups":
        return SetGroupsPayload(
            integration_id=int(integration_id or 0),
            integration=name,
            user_name=fields["user_name"],
            user_id=fields.get("user_id"),
            added=list(fields.get("added", [])),
            removed=list(fields.get("removed", [])),
        )
    if kind == "remove_integration":
        return RemoveIntegrationPayload(integration_id=int(integration_id or 0), integration=name)
    raise ValueError(kind)


def submit_request(
    core: Core,
    *,
    kind: str,
    integration_id: int | None,
    requester: str,
    payload: dict[str, Any],
    secret: str | None = None,
    response_url: str | None = None,
) -> Request:
    return approvals.submit(
        core,
        typed_payload(core, kind, integration_id, payload),
        requester=requester,
        secret=secret,
        response_url=response_url,
    )


def _name(core: Core, integration_id: int | None) -> str:
    if integration_id is None:
        return ""
    with core.sessions() as session:
        row = session.get(Integration, integration_id)
        return row.name if row is not None else ""
