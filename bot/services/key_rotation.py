"""Rotate RoleUp's own access key (an integration's key, never a person's), never left without a
working, saved key.

The steps, each leaving the store with a key that works:

1. create a new key for the key's own IAM user (refused when the user already has two: IAM
   allows no third), and save it sealed as the *pending* key beside the current one;
2. validate it: STS GetCallerIdentity (the same user), then an IAM read, retried while AWS
   propagates a new key (InvalidClientTokenId for a few seconds);
3. switch: the pending key becomes the integration's key in one guarded UPDATE, the old key's
   id is kept as *retiring* and its sealed secret is erased from the store's files;
4. deactivate the old key, with the new one, once no request runs through the integration (one
   that started before the switch holds the old key: deactivated under it, an onboarding would
   fail halfway and could not even undo itself); else the run stops here, the new key in use
   and the old one active, and the next run finishes;
5. wait for the first successful call with the new key as the integration now reads it;
6. delete the old key, and forget it.

A crash or an AWS error at any step leaves either the old key saved and active (before 3) or
the new one saved and validated (from 3). Two runs at once (the CLI beside the scheduled job)
may both resume one pending key: only one of them uses it or gives it up, since the switch and
the giving up each take it in one guarded UPDATE of the pending column, and a run deletes the
key in IAM only after its own UPDATE won (else one run gave up, and deleted, the key the other
had just saved). The next `rotate-credentials` (or the scheduled job)
resumes where it stopped: a pending key is validated again (or deleted when it does not work),
a retiring key is deactivated and deleted. A new key whose creation landed in IAM but not in
the store is named when the next attempt finds the user with two keys.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bot.logging_setup import secret_in_flight
from bot.services import approvals, audit
from bot.services.acting import SCHEDULER
from bot.services.aws import call, key_hint, seal_key_pair
from bot.services.container import Core
from bot.services.errors import (
    AwsUnavailable,
    InvalidCredentials,
    NotFound,
    NothingToRotate,
    RequestConflict,
    RoleUpError,
    Throttled,
)
from bot.services.integrations import get_integration
from storage.db import lock_for_update
from storage.erasure import SECRET_TABLES, purge
from storage.models import Integration, utcnow
from storage.updates import guarded_update

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

logger = logging.getLogger(__name__)

#: IAM allows two access keys per user: a rotation needs the second slot free.
MAX_KEYS = 2
STEPS = ("created", "validated", "saved", "deactivated", "confirmed", "deleted")
#: What a key still propagating through AWS answers, and what passes by itself.
TRANSIENT = (InvalidCredentials, Throttled, AwsUnavailable)


@dataclass(frozen=True)
class Propagation:
    """How long a new key is given to start working: AWS says seconds, rarely a minute."""

    attempts: int = 10
    first_delay: float = 1.0
    max_delay: float = 10.0
    sleep: Callable[[float], None] = time.sleep

    def delays(self) -> Iterable[float]:
        delay = self.first_delay
        for _ in range(self.attempts - 1):
            yield delay
            delay = min(delay * 2, self.max_delay)


#: Called after each step with its name; tests raise in it to play a crash there.
StepHook = Callable[[str], None]


@dataclass
class RotationOutcome:
    name: str
    new_key: str | None = None  # hint only
    old_key: str | None = None  # hint only
    done: list[str] = field(default_factory=list)
    #: Requests running with the old key, whose end the old key's retirement waits for.
    waiting_for: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.waiting_for:
            count = len(self.waiting_for)
            return (
                f"rotation of {self.name}: {self.new_key} is in use; {self.old_key} stays active "
                f"until {count} running request{'s' if count != 1 else ''} finish: run again "
                "later (the hourly job finishes it too)"
            )
        if "deleted" not in self.done:
            return f"rotation of {self.name}: {', '.join(self.done) or 'nothing done'}"
        return (
            f"rotated the access key of {self.name}: {self.new_key} is in use, "
            f"{self.old_key} is deleted"
        )


@dataclass(frozen=True)
class _Key:
    access_key_id: str
    secret_access_key: str = field(repr=False)

    @property
    def credentials(self) -> dict[str, str]:
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }

    @property
    def hint(self) -> str:
        return key_hint(self.access_key_id)


def rotate_credentials(
    core: Core,
    name: str,
    *,
    actor: str,
    propagation: Propagation | None = None,
    after_step: StepHook | None = None,
) -> RotationOutcome:
    """Rotate (or finish rotating) the integration's access key; see the module's steps.

    Raises NothingToRotate for a role, RequestConflict for a user with two keys already or a
    rotation running elsewhere, and the AWS error that stopped a step (the key in the store
    then still works, and running it again resumes)."""
    rotation = _Rotation(core, name, actor, propagation or Propagation(), after_step)
    try:
        return rotation.run()
    except RoleUpError as err:
        rotation.audit_failure(err)
        raise


class _Rotation:
    def __init__(
        self,
        core: Core,
        name: str,
        actor: str,
        propagation: Propagation,
        after_step: StepHook | None,
    ) -> None:
        self.core, self.actor, self.propagation = core, actor[:64], propagation
        self.after_step = after_step or (lambda step: None)
        self.box = core.require_box()
        with core.sessions() as session:
            row = get_integration(session, name)
            session.expunge(row)
        self.row = row
        self.outcome = RotationOutcome(row.name)
        #: The sealed pending key this run created or resumes: what its switch or give-up takes.
        self.pending_ciphertext: str | None = None
        if not row.credentials_ciphertext:
            raise NothingToRotate(
                f"Integration {row.name} assumes a role: nothing to rotate (AWS issues the "
                "role's credentials and renews them by itself)."
            )

    # --- the run -----------------------------------------------------------------------
    def run(self) -> RotationOutcome:
        current = self._open(self.row.credentials_ciphertext)
        with secret_in_flight(current.secret_access_key):
            user = self._own_user(current)
            if self.row.retiring_key_id:
                return self._retire(user, self.row.retiring_key_id)
            if self.row.pending_credentials_ciphertext:
                self.pending_ciphertext = self.row.pending_credentials_ciphertext
                pending = self._open(self.pending_ciphertext)
                with secret_in_flight(pending.secret_access_key):
                    return self._from_pending(user, current, pending)
            new = self._create(user, current)
            with secret_in_flight(new.secret_access_key):
                return self._from_pending(user, current, new)

    def _from_pending(self, user: str, current: _Key, new: _Key) -> RotationOutcome:
        self.outcome.new_key, self.outcome.old_key = new.hint, current.hint
        try:
            self._validate(new, user)
        except RoleUpError as err:
            self._give_up(user, current, new, err)
            raise
        self._step("validated")
        self._switch(current, new)
        self._step("saved")
        return self._retire(user, current.access_key_id)

    def _retire(self, user: str, old_key_id: str) -> RotationOutcome:
        self.outcome.old_key = self.outcome.old_key or key_hint(old_key_id)
        running = approvals.running_on(self.core, self.row.id)
        if running:
            logger.info(
                "the old key of %s stays active while %d request(s) run with it",
                self.row.name,
                len(running),
            )
            self.outcome.waiting_for = running
            with self.core.sessions() as session:
                self.outcome.new_key = get_integration(session, self.row.name).access_key_hint
            return self.outcome
        iam = self._iam_as_stored()
        self._deactivate(iam, user, old_key_id)
        self._step("deactivated")
        self._confirm()
        self._step("confirmed")
        self._delete(iam, user, old_key_id)
        self._forget_retiring(old_key_id)
        self._step("deleted")
        with self.core.sessions() as session:
            self.outcome.new_key = get_integration(session, self.row.name).access_key_hint
        return self.outcome

    # --- steps -------------------------------------------------------------------------
    def _own_user(self, key: _Key) -> str:
        sts = self.core.aws.sts_with_credentials(key.credentials, retries=1)
        arn = str(call(sts.get_caller_identity, "check the integration's key with AWS")["Arn"])
        if ":user/" not in arn:
            raise NothingToRotate(
                f"The key of {self.row.name} signs in as {arn.split(':')[-1][:64]}, not an IAM "
                "user: rotate it in the AWS console."
            )
        return arn.rsplit("/", 1)[1]

    def _create(self, user: str, current: _Key) -> _Key:
        iam = self.core.aws.iam_with_credentials(current.credentials, retries=3)
        keys = call(
            iam.list_access_keys, "list the access keys of RoleUp's own user", UserName=user
        )["AccessKeyMetadata"]
        if len(keys) >= MAX_KEYS:
            others = [key_hint(k["AccessKeyId"]) for k in keys]
            raise RequestConflict(
                f"The IAM user {user} already has two access keys ({', '.join(others)}); IAM "
                "allows no third. Delete the one RoleUp does not use "
                f"(it uses {current.hint}), then rotate again."
            )
        made = call(
            iam.create_access_key, "create a new access key for RoleUp's own user", UserName=user
        )["AccessKey"]
        new = _Key(made["AccessKeyId"], made["SecretAccessKey"])
        with secret_in_flight(new.secret_access_key):
            self._save_pending(iam, user, new)
        self.outcome.done.append("created")
        self.after_step("created")
        return new

    def _save_pending(self, iam: IAMClient, user: str, new: _Key) -> None:
        """Sealed beside the current key before anything relies on it, so a crash from here
        on leaves it known (and resumable) rather than a key nobody can use or delete."""
        sealed = seal_key_pair(self.box, new.access_key_id, new.secret_access_key)
        try:
            with self.core.sessions.begin() as session:
                won = guarded_update(
                    session,
                    Integration,
                    [
                        Integration.id == self.row.id,
                        Integration.credentials_ciphertext == self.row.credentials_ciphertext,
                        Integration.pending_credentials_ciphertext.is_(None),
                        Integration.retiring_key_id.is_(None),
                    ],
                    pending_credentials_ciphertext=sealed,
                )
        except Exception:
            self._delete_quietly(iam, user, new.access_key_id)
            raise
        if won != 1:
            self._delete_quietly(iam, user, new.access_key_id)
            raise RequestConflict(
                f"The key of {self.row.name} is being rotated or replaced elsewhere: nothing "
                "was changed here."
            )
        self.pending_ciphertext = sealed

    def _validate(self, new: _Key, user: str) -> None:
        """STS says the new key is the same user's, then IAM answers a read with it."""
        sts = self.core.aws.sts_with_credentials(new.credentials, retries=1)
        identity = self._until_it_works(
            lambda: call(sts.get_caller_identity, "check the new key with AWS")
        )
        if not str(identity["Arn"]).endswith(f"/{user}"):
            raise InvalidCredentials(
                f"The new key of {self.row.name} signs in as another principal: not used."
            )
        iam = self.core.aws.iam_with_credentials(new.credentials, retries=1)
        self._until_it_works(lambda: call(iam.list_users, "read IAM with the new key", MaxItems=1))

    def _until_it_works(self, attempt: Callable[[], Any]) -> Any:
        for delay in self.propagation.delays():
            try:
                return attempt()
            except TRANSIENT as err:
                logger.info("the new key of %s does not work yet: %s", self.row.name, err)
                self.propagation.sleep(delay)
        return attempt()

    def _give_up(self, user: str, current: _Key, new: _Key, err: RoleUpError) -> None:
        """The new key never worked: forget it, then delete it (with the current key).

        Forgotten first, in one UPDATE guarded on it still being pending: when another run
        has switched to it meanwhile (it worked there), the UPDATE finds nothing and the key,
        now the integration's own, is left alone."""
        with self.core.sessions.begin() as session:
            won = guarded_update(
                session,
                Integration,
                [
                    Integration.id == self.row.id,
                    Integration.pending_credentials_ciphertext == self.pending_ciphertext,
                ],
                pending_credentials_ciphertext=None,
            )
        if won != 1:
            logger.warning(
                "the new key of %s did not work here, but another rotation took it meanwhile: "
                "left alone (%s)",
                self.row.name,
                err,
            )
            return
        logger.warning("the new key of %s is not used: %s", self.row.name, err)
        iam = self.core.aws.iam_with_credentials(current.credentials, retries=3)
        self._delete_quietly(iam, user, new.access_key_id)
        purge(self.core.engine, SECRET_TABLES)

    def _switch(self, current: _Key, new: _Key) -> None:
        with self.core.sessions.begin() as session:
            lock_for_update(session)  # SQLite ignores FOR UPDATE (storage.db)
            row = session.scalar(
                select(Integration).where(Integration.id == self.row.id).with_for_update()
            )
            if row is None or row.credentials_ciphertext != self.row.credentials_ciphertext:
                raise RequestConflict(
                    f"The key of {self.row.name} was replaced meanwhile: the rotation stops."
                )
            if row.pending_credentials_ciphertext != self.pending_ciphertext:
                # Another run gave this key up (and deletes it): the current key stays.
                raise RequestConflict(
                    f"The new key of {self.row.name} was given up by another rotation "
                    "meanwhile: the current key stays in use; rotate again."
                )
            row.credentials_ciphertext = seal_key_pair(
                self.box, new.access_key_id, new.secret_access_key
            )
            row.pending_credentials_ciphertext = None
            row.access_key_hint = new.hint
            row.retiring_key_id = current.access_key_id
            row.credentials_changed_at = utcnow()
            audit.record_integration(
                session,
                row.name,
                actor=self.actor,
                action="integration.key_switched",
                detail={"old_key": current.hint, "new_key": new.hint},
            )
        self.core.aws.forget(self.row.id)
        # The old key's secret must not stay readable in the store's files.
        purge(self.core.engine, SECRET_TABLES)

    def _iam_as_stored(self) -> IAMClient:
        with self.core.sessions() as session:
            row = get_integration(session, self.row.name)
            session.expunge(row)
        return self.core.aws.iam_for(row, self.box, SCHEDULER)

    def _deactivate(self, iam: IAMClient, user: str, old_key_id: str) -> None:
        with contextlib.suppress(NotFound):  # deleted already (resumed, or by hand)
            call(
                iam.update_access_key,
                "deactivate RoleUp's old access key",
                UserName=user,
                AccessKeyId=old_key_id,
                Status="Inactive",
            )

    def _confirm(self) -> None:
        """The first call with the new key, as any later work will read it from the store."""
        iam = self._iam_as_stored()
        self._until_it_works(
            lambda: call(iam.list_users, "read IAM with the integration's new key", MaxItems=1)
        )

    def _delete(self, iam: IAMClient, user: str, old_key_id: str) -> None:
        with contextlib.suppress(NotFound):
            call(
                iam.delete_access_key,
                "delete RoleUp's old access key",
                UserName=user,
                AccessKeyId=old_key_id,
            )

    def _delete_quietly(self, iam: IAMClient, user: str, key_id: str) -> None:
        try:
            self._delete(iam, user, key_id)
        except RoleUpError as err:
            logger.warning(
                "could not delete the unused new key %s of %s: %s",
                key_hint(key_id),
                self.row.name,
                err,
            )

    def _forget_retiring(self, old_key_id: str) -> None:
        with self.core.sessions.begin() as session:
            won = guarded_update(
                session,
                Integration,
                [Integration.id == self.row.id, Integration.retiring_key_id == old_key_id],
                retiring_key_id=None,
            )
            if won != 1:
                return  # another run finishing the same rotation recorded it
            audit.record_integration(
                session,
                self.row.name,
                actor=self.actor,
                action="integration.key_rotated",
                detail={"old_key": key_hint(old_key_id), "new_key": self.outcome.new_key},
            )

    # --- helpers -------------------------------------------------------------------------
    def _step(self, step: str) -> None:
        self.outcome.done.append(step)
        self.after_step(step)

    def _open(self, ciphertext: str | None) -> _Key:
        assert ciphertext is not None
        pair = json.loads(self.box.decrypt(ciphertext, what=f"the key of {self.row.name}"))
        return _Key(pair["access_key_id"], pair["secret_access_key"])

    def audit_failure(self, err: RoleUpError) -> None:
        try:
            with self.core.sessions.begin() as session:
                audit.record_integration(
                    session,
                    self.row.name,
                    actor=self.actor,
                    action="integration.key_rotation_failed",
                    outcome="error",
                    detail={"error": err.user_message, "done": list(self.outcome.done)},
                )
        except Exception:
            logger.exception("could not audit the failed rotation of %s", self.row.name)


# --- the schedule ----------------------------------------------------------------------------
def due(core: Core, now: datetime | None = None) -> list[str]:
    """Integrations whose key is older than their `rotate_every_days`, or whose rotation is
    unfinished."""
    now = now or utcnow()
    with core.sessions() as session:
        rows = session.scalars(
            select(Integration)
            .where(Integration.credentials_ciphertext.is_not(None))
            .order_by(Integration.id)
        ).all()
    names = []
    for row in rows:
        if row.pending_credentials_ciphertext or row.retiring_key_id:
            names.append(row.name)
        elif row.rotate_every_days:
            since = row.credentials_changed_at or row.created_at
            if since + timedelta(days=row.rotate_every_days) <= now:
                names.append(row.name)
    return names


def rotate_due(core: Core, *, propagation: Propagation | None = None) -> list[tuple[str, str]]:
    """Rotate every due key; each failure is logged and audited, and left for the next run.
    Returns (integration, error) of the failures."""
    failures = []
    for name in due(core):
        try:
            rotate_credentials(core, name, actor="scheduler", propagation=propagation)
        except RoleUpError as err:
            logger.warning("scheduled key rotation of %s failed: %s", name, err)
            failures.append((name, err.user_message))
    return failures
