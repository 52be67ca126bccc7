"""Asking to offboard: find the accounts meant, preview exactly what goes, submit one request.

`/offboard alice` means the IAM user alice wherever the store knows it (an integration may be
named when several have one); `/offboard @person` means every account linked to that Slack
user across all integrations, under one approval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from bot.services import approvals, iam, lifecycle
from bot.services.container import Core
from bot.services.errors import (
    IntegrationNotFound,
    InvalidInput,
    ReadOnlyIntegration,
    Refused,
    UserNotFound,
)
from bot.services.policy import Action, Reason
from bot.services.reasons import NONE, Justification
from bot.services.request_kinds import OffboardAccount, OffboardPayload, refuse_own_principal
from bot.services.requesting import require
from storage.models import Account, Integration, Request

# A person's accounts in integrations the requester has no say over are simply not theirs.
NOT_THEIRS = (Reason.NOT_MANAGER, Reason.NO_ROLE)


@dataclass(frozen=True)
class OffboardTarget:
    integration_id: int
    integration: str
    user_name: str
    # Linked to the person by an IAM tag read at a first sync, not by a link RoleUp made.
    tag_link: bool = False
    # The UserId an access review froze: a user re-created under the name since is refused.
    reviewed_user_id: str | None = None


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
    made = lifecycle.links_made_by_roleup(core, slack_user_id, pairs)
    with core.sessions() as session:
        names = {i: n for i, n in session.execute(select(Integration.id, Integration.name))}
    return sorted(
        (
            OffboardTarget(int(i), str(names.get(i, i)), str(u), tag_link=(i, u) not in made)
            for i, u in pairs
        ),
        key=lambda t: (t.integration, t.user_name),
    )


def request_offboard(
    core: Core,
    *,
    requester: str,
    targets: list[OffboardTarget],
    asked_for: str,
    response_url: str | None = None,
    whole_person: bool = False,
    why: Justification = NONE,
) -> Request:
    """Read each account's offboarding plan from AWS and submit one request for all of them.

    The plan is what the approval message previews, item by item, and each account's IAM
    UserId is pinned. For one named account, the requester must manage its integration and it
    must be writable. For a person (`whole_person`), accounts in integrations the requester
    does not manage are left out, and accounts in read-only integrations are listed as "not
    touched (read-only)"; it is refused only when nothing writable is left. RoleUp's own
    principal is refused before any AWS call.
    """
    chosen, read_only = _writable_targets(core, requester, targets, whole_person)
    approvals.check_reason(core, [t.integration_id for t in chosen], why)  # before AWS is read
    accounts = []
    for target in chosen:
        refuse_own_principal(core, target.integration_id, target.user_name)
        plan = lifecycle.plan_offboard(
            core, target.integration_id, target.user_name, actor=requester
        )
        iam.check_same_user(
            {"UserId": plan.user_id},
            target.user_name,
            target.reviewed_user_id,
            since=iam.REVIEW_STARTED,
            then=iam.NOT_ASKED,
        )
        accounts.append(
            OffboardAccount(
                integration_id=target.integration_id,
                integration=target.integration,
                user_name=target.user_name,
                user_id=plan.user_id,
                plan=plan.to_dict(),
            )
        )
    payload = OffboardPayload(
        target=asked_for,
        accounts=accounts,
        read_only=[f"{t.integration}/{t.user_name}" for t in read_only],
        tag_links=[f"{t.integration}/{t.user_name}" for t in chosen if t.tag_link],
    )
    return approvals.submit(core, payload, requester=requester, response_url=response_url, why=why)


def _writable_targets(
    core: Core,
    requester: str,
    targets: list[OffboardTarget],
    whole_person: bool,
) -> tuple[list[OffboardTarget], list[OffboardTarget]]:
    with core.sessions() as session:
        ids = sorted({t.integration_id for t in targets})
        rows = {
            i.id: i
            for i in session.scalars(select(Integration).where(Integration.id.in_(ids))).all()
        }
        for row in rows.values():
            session.expunge(row)
    chosen: list[OffboardTarget] = []
    read_only: list[OffboardTarget] = []
    refusal: Refused | None = None
    for target in targets:
        integration = rows.get(target.integration_id)
        if integration is None:
            raise IntegrationNotFound("That integration no longer exists.")
        try:
            require(core, requester, Action.OFFBOARD, integration)
        except Refused as exc:
            if not whole_person or exc.decision.reason not in NOT_THEIRS:
                raise
            refusal = refusal or exc
            continue
        if integration.read_only and whole_person:
            read_only.append(target)
        else:
            chosen.append(target)
    if not chosen:
        if read_only:
            names = ", ".join(f"{t.integration}/{t.user_name}" for t in read_only)
            raise ReadOnlyIntegration(
                f"Every account linked to that person that you manage is in a read-only "
                f"integration ({names}): nothing to offboard through RoleUp."
            )
        assert refusal is not None
        raise refusal
    return chosen, read_only


def _integration_id(session: Any, name: str) -> int | None:
    return session.scalar(select(Integration.id).where(Integration.name == name))
