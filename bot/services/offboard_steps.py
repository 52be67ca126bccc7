"""Offboarding one IAM user, from one table of steps: the approver's preview and the run.

Each row of STEPS says what a step is called on the checklist, what it finds on the user (the
preview's items, of one kind) and how it removes them. `plan_offboard` lists, row by row, what
the rows find; `offboard_user` runs the same rows in the same order, so what the approver saw is
what the run removes. Like bot.services.iam: an IAM client and an Integration row in, no store.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from bot.services.aws import CallPools, call, run_each
from bot.services.errors import (
    AccessCutFailed,
    AwsError,
    NotFound,
    OutsidePrefix,
    PolicyNotFound,
    RoleUpError,
    StepFailed,
    UserNotFound,
)
from bot.services.iam import (
    check_same_user,
    get_user,
    pages,
    require_writable,
    user_exists,
    validate_username,
)
from storage.models import Integration

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

logger = logging.getLogger(__name__)
T = TypeVar("T")

DENY_ALL_POLICY_NAME = "roleup-offboarded-deny-all"
DENY_ALL_DOCUMENT = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "RoleUpOffboarded", "Effect": "Deny", "Action": "*", "Resource": "*"}
        ],
    }
)

#: The AWS managed policy attached instead when the inline deny-all is refused (the user's
#: inline policies may be at IAM's size limit, or the integration may not PutUserPolicy).
AWS_DENY_ALL_POLICY_NAME = "AWSDenyAll"
AWS_DENY_ALL_ARN = f"arn:aws:iam::aws:policy/{AWS_DENY_ALL_POLICY_NAME}"

#: How many cleanup steps (and deletions within one step) run at once: a few, to stay well
#: inside IAM's request rate while offboarding several people.
CLEANUP_CONCURRENCY = 4

#: A step's phase. The cuts take the user's access, all three at once, each tried even if
#: another fails, and nothing is removed until all three are done; the cleanup steps are
#: independent of one another and run concurrently; then, one after the other, the user goes
#: and AWS is asked whether it is gone.
CUT, CLEANUP, FINAL = "cut", "cleanup", "final"


def is_aws_deny_all(policy_arn: str) -> bool:
    """Whether the ARN is AWS's AWSDenyAll managed policy (in any partition)."""
    parts = policy_arn.split(":", 2)
    return len(parts) == 3 and parts[0] == "arn" and parts[2] == AWS_DENY_ALL_ARN.split(":", 2)[2]


def aws_deny_all_arn(user_arn: str | None) -> str:
    """AWSDenyAll's ARN in the partition of the user (arn:aws-cn:..., arn:aws-us-gov:...)."""
    parts = (user_arn or "").split(":", 2)
    partition = parts[1] if len(parts) == 3 and parts[0] == "arn" and parts[1] else "aws"
    return f"arn:{partition}:iam::aws:policy/{AWS_DENY_ALL_POLICY_NAME}"


@dataclass(frozen=True)
class PlanItem:
    """One thing the preview says offboarding will remove."""

    kind: str
    name: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "detail": self.detail}


class Found(NamedTuple):
    """One thing a step finds on the user: what names it to IAM, and a word about it."""

    name: str
    detail: str = ""


@dataclass(frozen=True)
class Target:
    """The user a run offboards, as its steps need it."""

    iam: IAMClient
    user_name: str
    #: The user's ARN: its partition names the AWSDenyAll to fall back on.
    user_arn: str
    #: The user's access keys, as read together with the user (before the cuts).
    listed_keys: Callable[[], list[Found]]
    #: The process's threads for the calls made at once (bot.services.aws.CallPools).
    pools: CallPools


Listing = Callable[["IAMClient", str], list[Found]]
Removal = Callable[[Target, Found], None]


@dataclass(frozen=True)
class Step:
    """One row of the offboarding: the checklist's line, and what the step finds and removes."""

    key: str
    label: str
    phase: str
    #: The preview's kind for what `listing` finds, and how the preview names one of them.
    kind: str = ""
    kind_label: str = ""
    #: What the user has that this step removes (read for the preview, and by the run).
    listing: Listing | None = None
    #: Removes one thing `listing` found: the run removes each, one after the other.
    remove: Removal | None = None
    #: The whole step, for one that is not "remove each thing found" (the cuts, the end).
    perform: Callable[[Target], None] | None = None
    #: The preview's detail for one thing found, when it takes more than the listing says.
    describe: Callable[[IAMClient, Found], str] | None = None


# --- calls on the user -----------------------------------------------------------------------
def _gone(user_name: str) -> UserNotFound:
    return UserNotFound(f"{user_name} is already gone.")


def _call_on_user(operation: Callable[..., Any], what: str, **kwargs: Any) -> Any:
    """A step's call: the user vanishing midway surfaces as UserNotFound (done)."""
    user_name = kwargs["UserName"]
    return call(operation, what, {"NoSuchEntity": lambda: _gone(user_name)}, **kwargs)


def _user_pages(iam: IAMClient, operation: str, key: str, user_name: str) -> list[Any]:
    try:
        return list(pages(iam, operation, key, UserName=user_name))
    except NotFound as err:
        raise _gone(user_name) from err


def _ignore_missing(operation: Callable[..., Any], what: str, **kwargs: Any) -> None:
    """A removal whose target is already gone has done its job."""
    with contextlib.suppress(NotFound):
        call(operation, what, **kwargs)


def _for_each(
    items: Sequence[T],
    remove: Callable[[T], None],
    *,
    bound: int = 1,
    pools: CallPools | None = None,
) -> None:
    """Remove each item (one IAM call each), `bound` at a time (on `pools`' call threads). A
    cleanup step removes its items one by one, since the steps themselves already run
    CLEANUP_CONCURRENCY at a time; the keys' deactivation, a cut, does them all at once. All
    are tried, then the first error (in the items' order) is raised."""
    if pools is None or bound <= 1 or len(items) <= 1:
        errors: list[RoleUpError] = []
        for item in items:
            try:
                remove(item)
            except UserNotFound:
                raise
            except RoleUpError as err:
                errors.append(err)
        if errors:
            raise errors[0]
        return
    # Calls only (no waiting inside): the call pool, never the pool a step runs on.
    for error in run_each(pools.calls, items, remove, bound=bound):
        if error is not None:
            raise error


# --- what the steps find ---------------------------------------------------------------------
def _listed(
    operation: str,
    key: str,
    name: str | None,
    detail: str | None = None,
    *,
    keep: Callable[[Found], bool] = lambda _found: True,
) -> Listing:
    """A listing read from a paginated IAM list of the user: each entry's `name` field (the
    entry itself when None) and `detail` field, the ones `keep` keeps."""

    def listing(iam: IAMClient, user_name: str) -> list[Found]:
        found = [
            Found(str(entry if name is None else entry[name]), str(entry[detail]) if detail else "")
            for entry in _user_pages(iam, operation, key, user_name)
        ]
        return [f for f in found if keep(f)]

    return listing


def _login_profile(iam: IAMClient, user_name: str) -> list[Found]:
    try:
        call(iam.get_login_profile, f"read the login profile of {user_name}", UserName=user_name)
    except NotFound:
        return []
    return [Found("console password")]


def _service_credentials(iam: IAMClient, user_name: str) -> list[Found]:
    # Not paginated by AWS: one call returns all of the user's credentials.
    answer = _call_on_user(
        iam.list_service_specific_credentials,
        f"list the service-specific credentials of {user_name}",
        UserName=user_name,
    )
    return [
        Found(cred["ServiceSpecificCredentialId"], cred["ServiceName"])
        for cred in answer.get("ServiceSpecificCredentials", [])
    ]


def _groups(iam: IAMClient, user_name: str) -> list[Found]:
    entries = _user_pages(iam, "list_groups_for_user", "Groups", user_name)
    return [Found(name) for name in sorted(g["GroupName"] for g in entries)]


def _key_detail(iam: IAMClient, key: Found) -> str:
    used = call(
        iam.get_access_key_last_used,
        f"read when access key {key.name[:4]}… was last used",
        AccessKeyId=key.name,
    ).get("AccessKeyLastUsed", {})
    last = used.get("LastUsedDate")
    when = f"last used {last:%Y-%m-%d}" if last else "never used"
    return f"{key.detail.lower()}, {when}"


# --- how the steps remove it -----------------------------------------------------------------
def _removal(operation: str, what: str, parameter: str, *, by_detail: bool = False) -> Removal:
    """Remove one thing found with `operation`, naming it by its name (or its detail) as
    `parameter`; `what` says what for AWS's refusals, with {user}, {name} and {detail}."""

    def remove(target: Target, found: Found) -> None:
        _ignore_missing(
            getattr(target.iam, operation),
            what.format(user=target.user_name, name=found.name, detail=found.detail),
            UserName=target.user_name,
            **{parameter: found.detail if by_detail else found.name},
        )

    return remove


def _remove_mfa_device(target: Target, device: Found) -> None:
    iam, user_name, serial = target.iam, target.user_name, device.name
    _ignore_missing(
        iam.deactivate_mfa_device,
        f"deactivate an MFA device of {user_name}",
        UserName=user_name,
        SerialNumber=serial,
    )
    if ":mfa/" in serial:  # a virtual device is an IAM entity of its own
        with contextlib.suppress(NotFound):
            call(
                iam.delete_virtual_mfa_device,
                f"delete the virtual MFA device of {user_name}",
                SerialNumber=serial,
            )


_delete_inline = _removal(
    "delete_user_policy", "delete the inline policy {name} of {user}", "PolicyName"
)


def _deny_all(target: Target) -> None:
    """Put the inline deny-all; if AWS refuses it (no PutUserPolicy, the user's inline policies
    at their size limit...), attach AWS's AWSDenyAll managed policy instead."""
    iam, user_name = target.iam, target.user_name
    fallback_arn = aws_deny_all_arn(target.user_arn)
    try:
        _call_on_user(
            iam.put_user_policy,
            f"attach a deny-all policy to {user_name}",
            UserName=user_name,
            PolicyName=DENY_ALL_POLICY_NAME,
            PolicyDocument=DENY_ALL_DOCUMENT,
        )
        return
    except UserNotFound:
        raise
    except RoleUpError as err:
        inline_error = err
    logger.info("inline deny-all refused for %s; attaching %s instead", user_name, fallback_arn)
    try:
        call(
            iam.attach_user_policy,
            f"attach {fallback_arn} to {user_name}",
            UserName=user_name,
            PolicyArn=fallback_arn,
        )
        return
    except NotFound as err:
        # The user gone, or (in an account or partition without it) the policy.
        if not user_exists(iam, user_name):
            raise _gone(user_name) from err
        fallback_error: RoleUpError = PolicyNotFound(
            f"Could not attach {fallback_arn} to {user_name}: AWS has no such managed policy."
        )
    except RoleUpError as err:
        fallback_error = err
    if _aws_deny_all_attached(iam, user_name):
        return  # attached by an earlier run: the user is denied everything all the same
    both = type(inline_error)(
        f"{inline_error} Attaching {fallback_arn} instead also failed: {fallback_error}"
    )
    both.field = inline_error.field
    raise both from fallback_error


def _aws_deny_all_attached(iam: IAMClient, user_name: str) -> bool:
    try:
        attached = _user_pages(iam, "list_attached_user_policies", "AttachedPolicies", user_name)
    except UserNotFound:
        raise
    except RoleUpError:
        return False  # cannot tell: the step fails with the errors it had
    return any(is_aws_deny_all(policy["PolicyArn"]) for policy in attached)


def _delete_login_profile(target: Target) -> None:
    # Deleted without reading it first (one call on the way to cutting access): a user with
    # no password, or no longer any, answers NoSuchEntity, which is this step done.
    _ignore_missing(
        target.iam.delete_login_profile,
        f"delete the password of {target.user_name}",
        UserName=target.user_name,
    )


def _deactivate_keys(target: Target) -> None:
    active = [key for key in target.listed_keys() if key.detail != "Inactive"]
    _for_each(
        active,
        lambda key: _ignore_missing(
            target.iam.update_access_key,
            f"deactivate an access key of {target.user_name}",
            UserName=target.user_name,
            AccessKeyId=key.name,
            Status="Inactive",
        ),
        bound=CLEANUP_CONCURRENCY,
        pools=target.pools,
    )


def _delete_user(target: Target) -> None:
    # The deny-all goes last: by now nothing else grants the user anything. Whichever was put
    # (the inline one, or AWSDenyAll when that was refused) is removed without listing first,
    # both at once: the other answers NoSuchEntity, which is nothing left to do. Anything else
    # still on the user (added meanwhile) makes DeleteUser fail, and running again removes it.
    deny_all_arn = aws_deny_all_arn(target.user_arn)
    _for_each(
        [
            lambda: _delete_inline(target, Found(DENY_ALL_POLICY_NAME)),
            lambda: _ignore_missing(
                target.iam.detach_user_policy,
                f"detach {deny_all_arn} from {target.user_name}",
                UserName=target.user_name,
                PolicyArn=deny_all_arn,
            ),
        ],
        lambda remove: remove(),
        bound=2,
        pools=target.pools,
    )
    _call_on_user(
        target.iam.delete_user,
        f"delete the IAM user {target.user_name}",
        UserName=target.user_name,
    )


def _confirm_gone(target: Target) -> None:
    if user_exists(target.iam, target.user_name):
        raise AwsError(f"AWS still lists {target.user_name} after deleting it.")


_access_keys = _listed("list_access_keys", "AccessKeyMetadata", "AccessKeyId", "Status")

# --- the table ---------------------------------------------------------------------------------
#: Every offboarding step, in checklist order. RoleUp's own deny-all (inline, or AWSDenyAll
#: when that was refused) is no one's item: it stays until the user is deleted.
STEPS: tuple[Step, ...] = (
    Step("deny_all", "Attach a deny-all policy (live sessions stop)", CUT, perform=_deny_all),
    Step(
        "login_profile",
        "Delete the console password",
        CUT,
        kind="login_profile",
        kind_label="Console password",
        listing=_login_profile,
        perform=_delete_login_profile,
    ),
    # The keys are listed (and previewed) once, under access_keys: deactivating them is a cut.
    Step("deactivate_keys", "Deactivate access keys", CUT, perform=_deactivate_keys),
    Step(
        "access_keys",
        "Delete access keys",
        CLEANUP,
        kind="access_key",
        kind_label="Access key",
        listing=_access_keys,
        remove=_removal("delete_access_key", "delete an access key of {user}", "AccessKeyId"),
        describe=_key_detail,
    ),
    Step(
        "signing_certificates",
        "Delete signing certificates",
        CLEANUP,
        kind="signing_certificate",
        kind_label="Signing certificate",
        listing=_listed("list_signing_certificates", "Certificates", "CertificateId", "Status"),
        remove=_removal(
            "delete_signing_certificate", "delete a signing certificate of {user}", "CertificateId"
        ),
    ),
    Step(
        "ssh_keys",
        "Delete SSH keys",
        CLEANUP,
        kind="ssh_key",
        kind_label="SSH key",
        listing=_listed("list_ssh_public_keys", "SSHPublicKeys", "SSHPublicKeyId", "Status"),
        remove=_removal("delete_ssh_public_key", "delete an SSH key of {user}", "SSHPublicKeyId"),
    ),
    Step(
        "service_credentials",
        "Delete service-specific credentials",
        CLEANUP,
        kind="service_credential",
        kind_label="Service-specific credential",
        listing=_service_credentials,
        remove=_removal(
            "delete_service_specific_credential",
            "delete a service-specific credential of {user}",
            "ServiceSpecificCredentialId",
        ),
    ),
    Step(
        "mfa_devices",
        "Remove MFA devices",
        CLEANUP,
        kind="mfa_device",
        kind_label="MFA device",
        listing=_listed("list_mfa_devices", "MFADevices", "SerialNumber"),
        remove=_remove_mfa_device,
    ),
    Step(
        "inline_policies",
        "Delete inline policies",
        CLEANUP,
        kind="inline_policy",
        kind_label="Inline policy",
        listing=_listed(
            "list_user_policies",
            "PolicyNames",
            None,
            keep=lambda found: found.name != DENY_ALL_POLICY_NAME,
        ),
        remove=_delete_inline,
    ),
    Step(
        "attached_policies",
        "Detach managed policies",
        CLEANUP,
        kind="attached_policy",
        kind_label="Managed policy (detach)",
        listing=_listed(
            "list_attached_user_policies",
            "AttachedPolicies",
            "PolicyName",
            "PolicyArn",
            keep=lambda found: not is_aws_deny_all(found.detail),
        ),
        remove=_removal(
            "detach_user_policy", "detach {detail} from {user}", "PolicyArn", by_detail=True
        ),
    ),
    Step(
        "groups",
        "Remove from groups",
        CLEANUP,
        kind="group",
        kind_label="Group membership",
        listing=_groups,
        remove=_removal(
            "remove_user_from_group", "remove {user} from the group {name}", "GroupName"
        ),
    ),
    Step("delete_user", "Delete the IAM user", FINAL, perform=_delete_user),
    Step("confirm_gone", "Confirm AWS no longer knows the user", FINAL, perform=_confirm_gone),
)

OFFBOARD_STEPS: list[str] = [step.key for step in STEPS]
STEP_LABELS: dict[str, str] = {step.key: step.label for step in STEPS}
#: How the preview names each kind of item.
PLAN_LABELS: dict[str, str] = {step.kind: step.kind_label for step in STEPS if step.kind}
CUT_STEPS: tuple[str, ...] = tuple(step.key for step in STEPS if step.phase == CUT)
CLEANUP_STEPS: tuple[str, ...] = tuple(step.key for step in STEPS if step.phase == CLEANUP)
FINAL_STEPS: tuple[str, ...] = tuple(step.key for step in STEPS if step.phase == FINAL)


def step_of(key: str) -> Step:
    """The row of that step, as the table holds it now."""
    return next(step for step in STEPS if step.key == key)


def perform(step: Step, target: Target) -> None:
    """Run one step: its own action, or the removal of each thing its listing finds now."""
    if step.perform is not None:
        step.perform(target)
        return
    assert step.listing is not None and step.remove is not None, step.key
    remove = step.remove
    _for_each(step.listing(target.iam, target.user_name), lambda found: remove(target, found))


# --- the preview -------------------------------------------------------------------------------
def plan_offboard(
    iam: IAMClient, integration: Integration, user_name: str, *, user: dict[str, Any] | None = None
) -> list[PlanItem]:
    """Exactly what offboarding will remove, read from AWS (for the approval preview), row by
    row in checklist order; `user`, when the caller has just read it, saves reading it again."""
    if user is None:
        get_user(iam, integration, user_name)
    items: list[PlanItem] = []
    for step in STEPS:
        if step.listing is None:
            continue
        for found in step.listing(iam, user_name):
            detail = step.describe(iam, found) if step.describe else found.detail
            items.append(PlanItem(step.kind, found.name, detail))
    return items


# --- the run -----------------------------------------------------------------------------------
StepReporter = Callable[[str, str], None]


def offboard_user(
    iam: IAMClient,
    integration: Integration,
    user_name: str,
    on_step: StepReporter,
    *,
    expected_user_id: str | None = None,
    pools: CallPools | None = None,
) -> bool:
    """Run every offboarding step; returns False if the user was already gone.

    First the access is cut (deny-all, password, keys), the three at once: each cut is tried
    even if another fails, and unless all three succeed nothing else is touched
    (AccessCutFailed). Then the cleanup steps, which do not depend on one another, run
    CLEANUP_CONCURRENCY at a time; each reads what is left and removes it, and one failing
    does not stop the others, so running again after a failure redoes the cuts and finishes
    the job. Deleting the user and confirming it is gone come last. A user who disappears
    midway (someone else deleted it) counts as done. With `expected_user_id`, a user of that
    name that is not the one the request was made for (deleted and re-created since) is
    refused before any write: the user is read together with its access keys (both reads),
    and no cut is sent before the user checks out.

    `on_step` is called from the threads making the calls, as each step starts and ends: it
    must be thread-safe and must not wait for I/O (a queue, bot.services.step_reports), so
    no AWS call waits for an earlier step's report. If it raises (the request taken over),
    the steps not started yet are not run and the error is raised.

    The concurrent calls run on `pools` (the process's, kept between runs); without it, on
    threads of this run's own.
    """
    require_writable(integration, "offboard users")
    validate_username(user_name)
    if pools is None:
        own = CallPools(size=CLEANUP_CONCURRENCY + len(CUT_STEPS))
        try:
            return offboard_user(
                iam, integration, user_name, on_step, expected_user_id=expected_user_id, pools=own
            )
        finally:
            own.shutdown()
    # The deactivation's read goes with the user check: one round trip before the cuts.
    keys = pools.calls.submit(contextvars.copy_context().run, _access_keys, iam, user_name)
    try:
        user = get_user(iam, integration, user_name)
    except OutsidePrefix:
        raise
    except UserNotFound:
        for step in OFFBOARD_STEPS:
            on_step(step, "done")
        return False
    finally:
        wait([keys])  # never left running past the check, whatever it found
    check_same_user(user, user_name, expected_user_id)
    target = Target(iam, user_name, str(user.get("Arn") or ""), keys.result, pools)
    if not _cut_access(target, on_step):
        return True
    outcome = _run_steps(CLEANUP_STEPS, target, on_step, CLEANUP_CONCURRENCY)
    if outcome.gone:
        _all_done_from(CLEANUP_STEPS[0], outcome, on_step)
        return True
    if outcome.failures:
        raise _steps_failed(user_name, outcome.failures)
    for index, step in enumerate(FINAL_STEPS, start=OFFBOARD_STEPS.index(FINAL_STEPS[0])):
        on_step(step, "running")
        try:
            perform(step_of(step), target)
        except UserNotFound:
            for rest in OFFBOARD_STEPS[index:]:
                on_step(rest, "done")
            return True
        except RoleUpError as err:
            on_step(step, "failed")
            raise _step_failed(step, user_name, err) from err
        on_step(step, "done")
    return True


@dataclass
class _Outcome:
    """What a batch of concurrent steps came to: which were reported done, which failed, and
    whether one found the user gone."""

    done: set[str] = field(default_factory=set)
    failures: list[tuple[str, RoleUpError]] = field(default_factory=list)
    gone: bool = False


def _run_steps(steps: Sequence[str], target: Target, on_step: StepReporter, bound: int) -> _Outcome:
    """Run every step, `bound` at a time, without waiting for anything but the calls. Each
    step reports itself running as it starts, from its own thread; the ends (done or failed)
    are reported in checklist order, by whichever thread ends the step that lets them out, so
    the audit log reads as if they ran one by one. Every step runs to its end whatever the
    others do; a failure is reported and kept (in checklist order), not raised."""
    outcome = _Outcome()
    lock = threading.Lock()
    ended: dict[str, str] = {}
    next_end = 0

    def end(step: str, status: str) -> None:
        nonlocal next_end
        with lock:
            ended[step] = status
            while next_end < len(steps) and steps[next_end] in ended:
                on_step(steps[next_end], ended[steps[next_end]])
                next_end += 1

    def run(step: str) -> None:
        on_step(step, "running")  # raises when reporting stopped: the step is not run
        try:
            perform(step_of(step), target)
        except UserNotFound:
            with lock:
                outcome.gone = True
        except RoleUpError as err:
            with lock:
                outcome.failures.append((step, err))
            end(step, "failed")
            return
        with lock:
            outcome.done.add(step)
        end(step, "done")

    # On the task pool: a step may wait on the call pool (the keys' deactivations).
    for crashed in run_each(target.pools.tasks, steps, run, bound=bound):
        if crashed is not None:
            raise crashed
    outcome.failures.sort(key=lambda failure: OFFBOARD_STEPS.index(failure[0]))
    return outcome


def _all_done_from(first: str, outcome: _Outcome, on_step: StepReporter) -> None:
    """The user is gone: every step from `first` on that was not reported done has nothing
    left to do (a failed one included)."""
    for step in OFFBOARD_STEPS[OFFBOARD_STEPS.index(first) :]:
        if step not in outcome.done:
            on_step(step, "done")


def _cut_access(target: Target, on_step: StepReporter) -> bool:
    """Try every cut, all at once; True when all are done, False when the user is gone (all
    done too). Raises AccessCutFailed, after trying them all, if any cut failed."""
    outcome = _run_steps(CUT_STEPS, target, on_step, len(CUT_STEPS))
    if outcome.gone:
        # Gone: every cut (a failed one too) and every later step has nothing left to do.
        _all_done_from(CUT_STEPS[0], outcome, on_step)
        return False
    if outcome.failures:
        raise _cuts_failed(target.user_name, outcome.failures)
    return True


def _reasons(failures: list[tuple[str, RoleUpError]]) -> str:
    return " ".join(f"“{STEP_LABELS[step]}” failed: {err}" for step, err in failures)


def _cuts_failed(user_name: str, failures: list[tuple[str, RoleUpError]]) -> AccessCutFailed:
    failed = [step for step, _ in failures]
    done = [step for step in CUT_STEPS if step not in failed]
    done_part = (
        "Done: " + ", ".join(f"“{STEP_LABELS[step]}”" for step in done) + ". " if done else ""
    )
    first_step, first_err = failures[0]
    return AccessCutFailed(
        f"Offboarding {user_name} could not cut all of its access, so nothing else was "
        f"removed yet. {_reasons(failures)} {done_part}"
        "Run it again to retry cutting access and finish.",
        step=first_step,
        cause=first_err,
        failed_steps=tuple(failed),
    )


def _steps_failed(user_name: str, failures: list[tuple[str, RoleUpError]]) -> RoleUpError:
    """One error for the cleanup steps that failed (in checklist order), naming each."""
    if len(failures) == 1:
        return _step_failed(failures[0][0], user_name, failures[0][1])
    first_step, first_err = failures[0]
    return StepFailed(
        f"Offboarding {user_name} cut its access but could not finish removing it. "
        f"{_reasons(failures)} Run it again to finish from there.",
        step=first_step,
        cause=first_err,
    )


def _step_failed(step: str, user_name: str, err: RoleUpError) -> RoleUpError:
    return StepFailed(
        f"Offboarding {user_name} stopped at “{STEP_LABELS[step]}”: {err} "
        "Run it again to finish from there.",
        step=step,
        cause=err,
    )
