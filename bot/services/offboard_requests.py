"""Asking to offboard: find the accounts meant, preview exactly what goes, submit one request.

`/offboard alice` means the IAM user alice wherever the store knows it (an integration may be
named when several have one); `/offboard @person` means every account linked to that Slack
user across all integrations, under one approval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from bot.services import approvals, lifecycle
from bot.services.approval_policy import OFFBOARD
from bot.services.container import Core
from bot.services.errors import IntegrationNotFound, InvalidInput, UserNotFound
from storage.models import Account, Integration, Request


@dataclass(frozen=True)
class OffboardTarget:
    integration_id: int
    integration: str
    user_name: str


def targets_by_username(
    core: Core, user_name: str, integration: str | None = None
) -> list[OffboardTarget]:
    """The account(s) called `user_name`, from the store (as of the last sync)."""
    query = (
        select(Integration.id, Integration.name, Account.user_name)
        .join(Account, Account.integration_id == Integration.id)
        .where(Account.user_name == user_name)
        .order_by(Integration.name)
    )
    if integration is not None:
        query = query.where(Integration.name == integration)
    with core.sessions() as session:
        if integration is not None and _integration_id(session, integration) is None:
            raise IntegrationNotFound(f"There is no integration {integration}.")
        found = [OffboardTarget(int(i), str(n), str(u)) for i, n, u in session.execute(query)]
    if not found:
        where = f"integration {integration}" if integration else "any integration"
        raise UserNotFound(f"There is no IAM user {user_name} in {where} (as of the last sync).")
    if len(found) > 1:
        names = ", ".join(t.integration for t in found)
        raise InvalidInput(
            f"{user_name} is in several integrations ({names}): "
            f"say which, e.g. `/offboard {user_name} {found[0].integration}`."
        )
    return found


def targets_of_slack_user(core: Core, slack_user_id: str) -> list[OffboardTarget]:
    """Every account linked to the Slack user, across all integrations."""
    pairs = lifecycle.accounts_of_slack_user(core, slack_user_id)
    if not pairs:
        raise UserNotFound(
            "No IAM account is linked to that Slack user: name the IAM user instead, "
            "or link one with `/roleup link`."
        )
    with core.sessions() as session:
        names = {i: n for i, n in session.execute(select(Integration.id, Integration.name))}
    return sorted(
        (OffboardTarget(int(i), str(names.get(i, i)), str(u)) for i, u in pairs),
        key=lambda t: (t.integration, t.user_name),
    )


def request_offboard(
    core: Core,
    *,
    requester: str,
    targets: list[OffboardTarget],
    asked_for: str,
    response_url: str | None = None,
) -> Request:
    """Read each account's offboarding plan from AWS and submit one request for all of them.

    The plan is what the approval message previews, item by item; a read-only integration or
    a user outside the integration's path prefix is refused here, before anyone is asked.
    """
    accounts = []
    for target in targets:
        plan = lifecycle.plan_offboard(core, target.integration_id, target.user_name)
        accounts.append(
            {
                "integration_id": target.integration_id,
                "integration": target.integration,
                "user_name": target.user_name,
                "plan": plan.to_dict(),
            }
        )
    integration_ids = {t.integration_id for t in targets}
    return approvals.submit(
        core,
        kind=OFFBOARD,
        integration_id=next(iter(integration_ids)) if len(integration_ids) == 1 else None,
        requester=requester,
        payload={"target": asked_for, "accounts": accounts},
        response_url=response_url,
    )


def _integration_id(session: Any, name: str) -> int | None:
    return session.scalar(select(Integration.id).where(Integration.name == name))
