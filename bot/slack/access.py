"""Asking bot.services.roles from a handler: user groups resolved through Slack, refusals
rendered with mentions of who can help."""

from __future__ import annotations

import logging
from collections.abc import Collection

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services.errors import NotAllowed
from bot.services.roles import WHAT, WHO, Action, Decision, Roster, can
from bot.slack.mrkdwn import escape, people

logger = logging.getLogger(__name__)


class Refusal(NotAllowed):
    """A roles refusal; `mrkdwn` carries the mentions of who can help (already safe)."""

    def __init__(self, message: str, mrkdwn: str) -> None:
        super().__init__(message)
        self.mrkdwn = mrkdwn


class SlackMemberOf:
    """member_of(user, usergroup) answered by usergroups.users.list, once per group per use."""

    def __init__(self, client: WebClient) -> None:
        self.client = client
        self._members: dict[str, frozenset[str]] = {}

    def __call__(self, user_id: str, usergroup_id: str) -> bool:
        if usergroup_id not in self._members:
            self._members[usergroup_id] = self._load(usergroup_id)
        return user_id in self._members[usergroup_id]

    def _load(self, usergroup_id: str) -> frozenset[str]:
        try:
            response = self.client.usergroups_users_list(usergroup=usergroup_id)
        except SlackApiError as exc:
            # Missing usergroups:read scope or a deleted group: nobody is in it, say so in the log.
            logger.warning(
                "cannot read Slack user group %s: %s", usergroup_id, exc.response.get("error")
            )
            return frozenset()
        return frozenset(str(u) for u in response.get("users") or [])


def refusal(decision: Decision, action: Action, integration: Roster | None) -> Refusal:
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
    member_of: SlackMemberOf,
) -> Decision:
    """The decision if allowed; raise a Refusal (naming who can help) if not."""
    decision = can(actor_id, action, integration, admins, member_of)
    if not decision.allowed:
        raise refusal(decision, action, integration)
    return decision


def allowed(
    actor_id: str,
    action: Action,
    integration: Roster | None,
    admins: Collection[str],
    member_of: SlackMemberOf,
) -> bool:
    return can(actor_id, action, integration, admins, member_of).allowed
