"""Who RoleUp acts for in AWS, and the assumed-role sessions it keeps for them.

An integration with a role is assumed in a session named after the actor the audit log names
(`roleup-U0123ABCD` for a Slack user, `roleup-scheduler` for scheduled work, `roleup-cli-<os
user>` for the CLI), with the Slack user as SourceIdentity and the request and integration as
session tags, so CloudTrail tells who acted and why (README, "Attribution in CloudTrail").

Sessions are reused per (integration, its credentials, actor, request) until five minutes
before they expire: one person's session never serves another's action, and a request's tag
never lands on another request's calls.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from bot.slack import ids
from storage.models import Integration

#: What AWS allows in RoleSessionName and SourceIdentity: [\w+=,.@-], 2 to 64 characters.
SESSION_NAME_MAX = 64
_NOT_IN_SESSION_NAME = re.compile(r"[^A-Za-z0-9_+=,.@-]")
#: Session tag values: letters, digits, spaces and _ . : / = + - @, up to 256 characters.
_NOT_IN_TAG_VALUE = re.compile(r"[^A-Za-z0-9 _.:/=+@-]")
TAG_VALUE_MAX = 256

TAG_REQUEST = "roleup:request"
TAG_INTEGRATION = "roleup:integration"

#: The audit log's names for RoleUp's own scheduled and housekeeping work.
SCHEDULED_ACTORS = frozenset({"scheduler", "roleup"})
#: Credentials are assumed again this long before AWS says they expire.
REFRESH_BEFORE = timedelta(minutes=5)


def _clean(text: str, pattern: re.Pattern[str], limit: int) -> str:
    return pattern.sub("-", text)[:limit]


@dataclass(frozen=True)
class Actor:
    """Who an AWS call is made for: `who` exactly as the audit log names the actor."""

    who: str
    request_id: str | None = None
    integration: str | None = None

    def for_integration(self, name: str) -> Actor:
        return replace(self, integration=name)

    @property
    def slack_user(self) -> str | None:
        return self.who if ids.is_user(self.who) else None

    @property
    def session_name(self) -> str:
        """`roleup-<who>`, sanitised to what AWS accepts in RoleSessionName."""
        if self.slack_user:
            name = f"roleup-{self.slack_user}"
        elif self.who in SCHEDULED_ACTORS:
            name = "roleup-scheduler"
        elif self.who.startswith("cli:"):
            name = "roleup-cli-" + self.who.removeprefix("cli:")
        elif self.who.startswith("roleup-"):
            name = self.who
        else:
            name = f"roleup-{self.who}"
        return _clean(name, _NOT_IN_SESSION_NAME, SESSION_NAME_MAX)

    @property
    def source_identity(self) -> str | None:
        """The Slack user: AWS keeps it across role chaining and CloudTrail shows it on every
        call of the session. Nobody else is a person RoleUp can vouch for."""
        return self.slack_user

    @property
    def tags(self) -> dict[str, str]:
        found = {}
        if self.request_id:
            found[TAG_REQUEST] = _clean(self.request_id, _NOT_IN_TAG_VALUE, TAG_VALUE_MAX)
        if self.integration:
            found[TAG_INTEGRATION] = _clean(self.integration, _NOT_IN_TAG_VALUE, TAG_VALUE_MAX)
        return found


def acting(who: str, request_id: str | None = None) -> Actor:
    return Actor(who=who or "roleup", request_id=request_id)


SCHEDULER = Actor("scheduler")
#: The credential check (adding an integration): no request, nobody's session to reuse.
CHECK_ACTOR = Actor("roleup-check")


@dataclass(frozen=True)
class Assumed:
    credentials: dict[str, str] = field(repr=False)
    expires_at: datetime


CacheKey = tuple[int, str, str, str | None]


class SessionCache:
    """Assumed-role credentials per (integration, its credentials, actor, request); thread-safe,
    and one AssumeRole for concurrent callers wanting the same session."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[CacheKey, Assumed] = {}
        self._making: dict[CacheKey, threading.Lock] = {}

    def get(
        self,
        integration: Integration,
        actor: Actor,
        make: Callable[[], Assumed],
    ) -> Assumed:
        # The raw actor and request, not the sanitised session name: two actors whose names
        # sanitise alike still never share a session.
        key: CacheKey = (integration.id, fingerprint(integration), actor.who, actor.request_id)
        with self._lock:
            self._drop_stale(key)
            found = self._entries.get(key)
            if found is not None:
                return found
            maker = self._making.setdefault(key, threading.Lock())
        with maker:
            with self._lock:
                found = self._entries.get(key)
                if found is not None and self._fresh(found):
                    return found
            try:
                made = make()
                with self._lock:
                    self._entries[key] = made
                return made
            finally:
                with self._lock:
                    self._making.pop(key, None)

    def forget(self, integration_id: int) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == integration_id]:
                del self._entries[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _fresh(self, assumed: Assumed) -> bool:
        return self._clock() < assumed.expires_at - REFRESH_BEFORE

    def _drop_stale(self, wanted: CacheKey) -> None:
        """Expired sessions, and every session of the integration made with other credentials
        (replaced in another process, which this one learns by reading the row)."""
        integration_id, current = wanted[0], wanted[1]
        for key, assumed in list(self._entries.items()):
            replaced = key[0] == integration_id and key[1] != current
            if replaced or not self._fresh(assumed):
                del self._entries[key]


def fingerprint(integration: Integration) -> str:
    """Changes whenever the integration's role or sealed external id does."""
    material = f"{integration.role_arn}\0{integration.external_id_ciphertext or ''}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
