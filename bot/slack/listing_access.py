"""Which integrations a person may see or act on, for handlers that work over several."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.services import listing
from bot.services.container import Core
from bot.services.errors import IntegrationNotFound, UserNotFound
from bot.services.people import People
from bot.services.policy import Action, Decision, Reason, can, standing_refusal
from bot.slack.access import refusal, require
from bot.slack.args import usage_error

if TYPE_CHECKING:
    from bot.services.records import IntegrationInfo

NO_INTEGRATIONS = (
    "There are no integrations yet. A RoleUp admin can add one with `/roleup integration add`."
)


def permitted(
    core: Core,
    actor: str,
    action: Action,
    member_of: People,
    name: str | None = None,
    *,
    every: list[IntegrationInfo] | None = None,
) -> list[IntegrationInfo]:
    """The named integration (refusing if not allowed), or every one the actor may use.

    `every`: all the integrations, when the caller has just read them (they are not read
    again). Raises IntegrationNotFound / Refusal, so the user learns what to do
    next.
    """
    admins = core.settings.admins
    if name is not None:
        if every is not None:
            found = next((i for i in every if i.name == name), None)
        else:
            found = listing.integration_by_name(core, name)
        if found is None:
            raise IntegrationNotFound(f"There is no integration '{name}'.")
        require(actor, action, found, admins, member_of)
        return [found]
    if every is None:
        every = listing.integrations(core)
    if not every:
        raise IntegrationNotFound(NO_INTEGRATIONS)
    standing = member_of.standing(actor)
    refused = standing_refusal(standing)
    if refused is not None:  # a guest or a deactivated account: say so, not whom to ask
        raise refusal(refused, action, None)
    decisions = [(i, can(actor, action, i, admins, member_of.member_of, standing)) for i in every]
    mine = [i for i, decision in decisions if decision.allowed]
    if not mine:
        # Whoever could help with any of them (their managers, say), else the admins.
        helpers = list(dict.fromkeys(h for _, d in decisions for h in d.who_can_help))
        decision = Decision(False, Reason.NO_ROLE, tuple(helpers[:10]) or tuple(sorted(admins)))
        raise refusal(decision, action, None)
    return mine


def holding_user(
    core: Core, actor: str, action: Action, name: str | None, user_name: str, command: str
) -> IntegrationInfo:
    """The one integration the actor may `action` in (`name`, or any) that has IAM user
    `user_name`; UserNotFound when none has it, a usage error naming them when several do."""
    mine = permitted(core, actor, action, core.people, name)
    having = listing.having_user(core, user_name, mine)
    if not having:
        raise UserNotFound(f"No IAM user '{user_name}' in the integrations you manage.")
    if len(having) > 1:
        names = ", ".join(i.name for i in having)
        raise usage_error(command, f"'{user_name}' exists in {names}: name one.")
    return having[0]
