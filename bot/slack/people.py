"""The Slack directory behind `core.people`: users.info for standing, usergroups.users.list for
user groups (the one place RoleUp asks Slack who is in a user group, whether to decide who may
approve or to know whom to tell). One per process, shared by every command, click and job: each
answer is kept at most TTL_SECONDS, so a command does not wait on a Slack round trip (and pay
for it in CPU) that the previous one made a moment ago. That is the bound on how stale a
permission decision can be: a member made a guest or deactivated, or removed from a user group,
is refused within a minute on every instance (each process's answers age out on their own).
Who the managers, approvers and admins are is never kept here: the store says so every time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services.policy import Standing

logger = logging.getLogger(__name__)

TTL_SECONDS = 60.0
MAX_ENTRIES = 5000


def standing_of(user: dict[str, Any]) -> Standing:
    """A users.info `user` object as the policy sees it."""
    if user.get("deleted"):
        return Standing.DEACTIVATED
    if user.get("is_restricted") or user.get("is_ultra_restricted"):
        return Standing.GUEST
    return Standing.MEMBER


class SlackPeople:
    """Thread-safe, bounded, and short-lived: a guest made a member (or a member deactivated)
    is seen within TTL_SECONDS."""

    def __init__(self, client: WebClient, ttl: float = TTL_SECONDS) -> None:
        self.client = client
        self.ttl = ttl
        self._lock = threading.Lock()
        self._standing: dict[str, tuple[float, Standing]] = {}
        # Members in Slack's order, so approvers are told in the order Slack lists them.
        self._groups: dict[str, tuple[float, tuple[str, ...]]] = {}

    def standing(self, user_id: str) -> Standing:
        return self._cached(self._standing, user_id, self._load_standing)

    def member_of(self, user_id: str, usergroup_id: str) -> bool:
        try:
            return user_id in self.members(usergroup_id)
        except SlackApiError as exc:
            # Missing usergroups:read scope or a deleted group: nobody is in it (for a while).
            logger.warning(
                "cannot read Slack user group %s: %s", usergroup_id, exc.response.get("error")
            )
            self._keep(self._groups, usergroup_id, time.monotonic(), ())
            return False

    def members(self, usergroup_id: str) -> tuple[str, ...]:
        """Who is in the user group; Slack's error (SlackApiError, OSError) when it fails, which
        is not kept, so the next call asks again."""
        members: tuple[str, ...] = self._cached(self._groups, usergroup_id, self._load_group)
        return members

    def _cached(
        self, cache: dict[str, tuple[float, Any]], key: str, load: Callable[[str], Any]
    ) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = cache.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = load(key)
        if value is not Standing.UNKNOWN:
            self._keep(cache, key, now, value)
        return value

    def _keep(self, cache: dict[str, tuple[float, Any]], key: str, now: float, value: Any) -> None:
        with self._lock:
            if len(cache) >= MAX_ENTRIES:
                cache.clear()
            cache[key] = (now, value)

    def _load_standing(self, user_id: str) -> Standing:
        try:
            response = self.client.users_info(user=user_id)
        except SlackApiError as exc:
            if exc.response.get("error") == "user_not_found":
                return Standing.DEACTIVATED
            logger.warning("users.info %s failed: %s", user_id, exc.response.get("error"))
            return Standing.UNKNOWN
        except Exception as exc:  # Slack unreachable: refuse on no guess, say so
            logger.warning("users.info %s failed: %s", user_id, type(exc).__name__)
            return Standing.UNKNOWN
        return standing_of(response.get("user") or {})

    def _load_group(self, usergroup_id: str) -> tuple[str, ...]:
        response = self.client.usergroups_users_list(usergroup=usergroup_id)
        return tuple(dict.fromkeys(str(u) for u in response.get("users") or []))
