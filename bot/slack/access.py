"""Asking bot.services.policy from a handler: user groups resolved through Slack, refusals
rendered with mentions of who can help."""

from __future__ import annotations

from collections.abc import Collection

from bot.services.errors import NotAllowed
from bot.services.people import People
from bot.services.policy import WHAT, WHO, Action, Decision, Roster, can
from bot.slack.mrkdwn import escape, people


class Refusal(NotAllowed):
    """A roles refusal; `mrkdwn` carries the mentions of who can help (already safe)."""

    def __init__(self, message: str, mrkdwn: str) -> None:
        super().__init__(message)
        self.mrkdwn = mrkdwn


def refusal(decision: Decision, action: Action, integration: Roster | None) -> Refusal:
    if decision.text:  # a guest, a deactivated account, Slack unreadable: nobody to ask
        return Refusal(decision.text, escape(decision.text))
    where = f" for *{escape(integration.name)}*" if integration is not None else ""
    who = WHO.get(decision.reason, "RoleUp admins") if integration else "someone who can"
    helpers = people(list(decision.who_can_help), none="nobody is set up yet")
    text = f"You can't {WHAT[action]}{where}. Ask {who}: {helpers}."
    plain = f"not allowed to {WHAT[action]}" + (f" for {integration.name}" if integration else "")
    return Refusal(plain, text)


def require(
    actor_id: str,
    action: Action,
    integration: Roster | None,
    admins: Collection[str],
    people: People,
) -> Decision:
    """The decision if allowed; raise a Refusal (naming who can help) if not."""
    decision = can(
        actor_id, action, integration, admins, people.member_of, people.standing(actor_id)
    )
    if not decision.allowed:
        raise refusal(decision, action, integration)
    return decision


def allowed(
    actor_id: str,
    action: Action,
    integration: Roster | None,
    admins: Collection[str],
    people: People,
) -> bool:
    return can(
        actor_id, action, integration, admins, people.member_of, people.standing(actor_id)
    ).allowed
