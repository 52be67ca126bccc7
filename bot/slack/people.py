"""The Slack directory behind `core.people`: users.info for standing, usergroups.users.list for
user groups. One per process, shared by every command, click and job: each answer is kept at
most TTL_SECONDS, so a command does not wait on a Slack round trip (and pay for it in CPU) that
the previous one made a moment ago. That is the bound on how stale a permission decision can
be: a member made a guest or deactivated, or removed from a user group, is refused within a
minute on every instance (each process's answers age out on their own)."""

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
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}

    def standing(self, user_id: str) -> Standing:
        return self._cached(self._standing, user_id, self._load_standing)

    def member_of(self, user_id: str, usergroup_id: str) -> bool:
        return user_id in self._cached(self._groups, usergroup_id, self._load_group)

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
            with self._lock:
                if len(cache) >= MAX_ENTRIES:
                    cache.clear()
                cache[key] = (now, value)
        return value

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

    def _load_group(self, usergroup_id: str) -> frozenset[str]:
        try:
            response = self.client.usergroups_users_list(usergroup=usergroup_id)
        except SlackApiError as exc:
            # Missing usergroups:read scope or a deleted group: nobody is in it.
            logger.warning(
                "cannot read Slack user group %s: %s", usergroup_id, exc.response.get("error")
            )
            return frozenset()
        return frozenset(str(u) for u in response.get("users") or [])
