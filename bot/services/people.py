"""Who people are, as the policy needs to know: user-group membership and Slack standing.

The services ask `core.people`; the Slack app installs a directory backed by users.info and
usergroups.users.list (bot.slack.people). Processes without Slack (the CLI, the scheduler in a
CLI process) know nobody as a guest and nobody in a user group.
"""

from __future__ import annotations

from typing import Protocol

from bot.services.policy import Standing


class People(Protocol):
    def member_of(self, user_id: str, usergroup_id: str) -> bool: ...

    def members(self, usergroup_id: str) -> tuple[str, ...]:
        """Who is in a user group, to know whom to tell (never to decide who may act)."""
        ...

    def standing(self, user_id: str) -> Standing: ...


class NoDirectory:
    """For processes without Slack: everyone is a member, nobody is in a user group."""

    def member_of(self, user_id: str, usergroup_id: str) -> bool:
        return False

    def members(self, usergroup_id: str) -> tuple[str, ...]:
        return ()

    def standing(self, user_id: str) -> Standing:
        return Standing.MEMBER
