"""One integration opened for one use case: its row, one IAM client acting for one person (and
request), and the account's password rules, each got from AWS at most once.

A use case (an `/onboard`, an invite answer, a sync, an offboarding) opens a handle and passes
it down to every service it calls, so the role is assumed once, the password policy read once
and the boto3 client built once; a boto3 client may be shared between threads, so the
offboarding's concurrent calls share the handle's one client too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.services.acting import acting
from bot.services.aws import call
from bot.services.errors import IntegrationNotFound
from bot.services.iam import NewUser, PasswordRules, password_rules
from storage.models import Integration

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from bot.services.container import Core


def load_integration(core: Core, integration_id: int) -> Integration:
    """A detached copy of the integration row (its attributes stay readable after the session)."""
    with core.sessions() as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            raise IntegrationNotFound(f"There is no integration with id {integration_id}.")
        session.expunge(integration)
        return integration


class IntegrationHandle:
    """The integration as one use case sees it; thread-safe, and lazy: opening one asks AWS
    nothing, the first use of `iam` assumes the role (or reuses a cached session)."""

    def __init__(
        self, core: Core, integration: Integration, *, actor: str, request_id: str | None = None
    ) -> None:
        self.core = core
        self.integration = integration
        self.actor = actor
        self.request_id = request_id
        self._lock = threading.Lock()
        self._iam: IAMClient | None = None
        self._rules: PasswordRules | None = None
        self._checked: set[tuple[str, tuple[str, ...], tuple[str, ...]]] = set()

    @property
    def id(self) -> int:
        return self.integration.id

    @property
    def name(self) -> str:
        return self.integration.name

    def acts_for(self, actor: str, request_id: str | None) -> bool:
        """Whether this handle's AWS session is the one `actor` acting for `request_id` gets:
        CloudTrail must name the right person and request on every call (bot.services.acting)."""
        return self.actor == actor and self.request_id == request_id

    @property
    def iam(self) -> IAMClient:
        """The IAM client acting for this handle's actor and request, made once."""
        with self._lock:
            if self._iam is None:
                integration = self.integration
                self._iam = call(
                    lambda: self.core.aws.iam_for(
                        integration, self.core.require_box(), acting(self.actor, self.request_id)
                    ),
                    f"reach the AWS account of {integration.name}",
                )
            return self._iam

    def password_rules(self) -> PasswordRules:
        """The account's password policy, read once (a failed read is not kept)."""
        client = self.iam
        with self._lock:
            if self._rules is None:
                self._rules = password_rules(client)
            return self._rules

    def mark_checked(self, new: NewUser) -> None:
        """Remember that AWS was asked about this user, its groups and policies just now."""
        with self._lock:
            self._checked.add(_check_key(new))

    def was_checked(self, new: NewUser) -> bool:
        with self._lock:
            return _check_key(new) in self._checked


def _check_key(new: NewUser) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    return (new.user_name, tuple(sorted(new.groups)), tuple(sorted(new.policies)))


def open_integration(
    core: Core, integration_id: int, *, actor: str, request_id: str | None = None
) -> IntegrationHandle:
    """Read the integration row and open it for `actor` (and `request_id`)."""
    return IntegrationHandle(
        core, load_integration(core, integration_id), actor=actor, request_id=request_id
    )


IntegrationRef = int | IntegrationHandle


def use(
    core: Core, ref: IntegrationRef, *, actor: str, request_id: str | None = None
) -> IntegrationHandle:
    """The handle a caller passed, or a new one for a caller that passed only an id. A handle
    acting for someone else (or another request) is refused: its session would sign the calls
    in another person's name."""
    if isinstance(ref, IntegrationHandle):
        if not ref.acts_for(actor, request_id):
            raise ValueError(
                f"the handle of {ref.name} acts for {ref.actor} ({ref.request_id}), "
                f"not {actor} ({request_id})"
            )
        return ref
    return open_integration(core, ref, actor=actor, request_id=request_id)


class Handles:
    """The handles of one use case that may span integrations (an offboarding of a person's
    accounts), all acting for one actor and request: each integration is opened once."""

    def __init__(
        self,
        core: Core,
        *,
        actor: str,
        request_id: str | None = None,
        opened: Iterable[IntegrationHandle] = (),
    ) -> None:
        self.core, self.actor, self.request_id = core, actor, request_id
        self._lock = threading.Lock()
        # Handles opened before (the checks of the command that filed the request) serve only
        # when they act for the same person and request.
        self._by_id = {h.id: h for h in opened if h.acts_for(actor, request_id)}

    def __call__(self, integration_id: int) -> IntegrationHandle:
        with self._lock:
            found = self._by_id.get(integration_id)
            if found is None:
                found = open_integration(
                    self.core, integration_id, actor=self.actor, request_id=self.request_id
                )
                self._by_id[integration_id] = found
            return found
