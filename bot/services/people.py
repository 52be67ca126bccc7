"""Who people are, as the policy needs to know: user-group membership and Slack standing.

The services ask `core.people`; the Slack app installs a directory backed by users.info and
usergroups.users.list (bot.slack.people). Processes without Slack (the CLI, the scheduler in a
CLI process) know nobody as a guest and nobody in a user group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from bot.services.policy import Standing, is_usergroup


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


def everyone_in(
    people: People,
    entries: Iterable[str],
    failures: tuple[type[Exception], ...],
    unread: Callable[[str, Exception], None],
) -> list[str]:
    """The user ids among `entries` and the members of its user groups, each once, in order; a
    user group whose members cannot be read (one of `failures`) goes to `unread` instead."""
    found: list[str] = []
    for entry in entries:
        if not is_usergroup(entry):
            found.append(entry)
            continue
        try:
            found.extend(people.members(entry))
        except failures as exc:
            unread(entry, exc)
    return list(dict.fromkeys(found))
