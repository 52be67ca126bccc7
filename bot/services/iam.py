"""Pure IAM operations: an IAM client and an Integration row in, AWS changes out. No store.

Every function here enforces the integration's rules before it reaches AWS: a read-only
integration refuses writes before any call, and a user whose path is outside the integration's
path prefix is reported as not found and never touched.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import secrets
import string
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from bot.services.aws import call
from bot.services.errors import (
    AccessCutFailed,
    AwsAccessDenied,
    AwsError,
    GroupNotFound,
    InvalidGroupName,
    InvalidPolicyArn,
    InvalidUsername,
    NotFound,
    OutsidePrefix,
    PasswordPolicyViolation,
    PolicyNotFound,
    ReadOnlyIntegration,
    RoleUpError,
    StepFailed,
    TargetReplaced,
    UserExists,
    UserNotFound,
)
from storage.models import Integration

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

logger = logging.getLogger(__name__)
T = TypeVar("T")

TAG_SLACK_USER = "roleup:slack-user"
TAG_CREATED_BY = "roleup:created-by"
TAG_REQUEST_ID = "roleup:request-id"

USERNAME_RE = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")
GROUP_NAME_RE = re.compile(r"[A-Za-z0-9+=,.@_-]{1,128}")
# arn:aws[-partition]:iam::(aws|ACCOUNT):policy[/path/]NAME
POLICY_ARN_RE = re.compile(
    r"arn:aws(?:-[a-z]+)*:iam::(?:aws|\d{12}):policy/(?:[\x21-\x2e\x30-\x7e]+/)*"
    r"[A-Za-z0-9+=,.@_-]{1,128}"
)
PATH_RE = re.compile(r"/(?:[\x21-\x2e\x30-\x7e]+/)*")
SLACK_USER_RE = re.compile(r"[UW][A-Z0-9]{2,31}")
# The symbols IAM accepts as "non-alphanumeric" in its password policy.
PASSWORD_SYMBOLS = "!@#$%^&*()_+-=[]{}|'"  # noqa: S105 (a character set, not a password)


# --- input rules -----------------------------------------------------------------------------
def _shown(value: str) -> str:
    """A user's input as it may be echoed back: short, printable."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in value)
    return clean if len(clean) <= 40 else clean[:37] + "..."


def validate_username(user_name: str) -> None:
    if not USERNAME_RE.fullmatch(user_name or ""):
        raise InvalidUsername(
            f"“{_shown(user_name)}” is not a valid IAM username: use 1 to 64 letters, digits "
            "or + = , . @ _ -"
        )


def validate_group_name(group: str) -> None:
    if not GROUP_NAME_RE.fullmatch(group or ""):
        raise InvalidGroupName(
            f"“{_shown(group)}” is not a valid IAM group name: use 1 to 128 letters, digits "
            "or + = , . @ _ -"
        )


def validate_policy_arn(arn: str) -> None:
    if not POLICY_ARN_RE.fullmatch(arn or ""):
        raise InvalidPolicyArn(
            f"“{_shown(arn)}” is not a managed policy ARN "
            "(like arn:aws:iam::aws:policy/ReadOnlyAccess)"
        )


def validate_slack_user(slack_user_id: str) -> None:
    if not SLACK_USER_RE.fullmatch(slack_user_id or ""):
        raise InvalidUsername(
            f"“{_shown(slack_user_id)}” is not a Slack user id", field="slack_user"
        )


def normalized_prefix(prefix: str | None) -> str:
    prefix = prefix or "/"
    return prefix if prefix.endswith("/") else prefix + "/"


def in_prefix(path: str, integration: Integration) -> bool:
    return (path or "/").startswith(normalized_prefix(integration.path_prefix))


def require_writable(integration: Integration, what: str) -> None:
    """Refuse a write on a read-only integration before anything reaches AWS."""
    if integration.read_only:
        raise ReadOnlyIntegration(
            f"{integration.name} is read-only: RoleUp cannot {what} through it."
        )


# --- password policy ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PasswordRules:
    """The account's password policy, or AWS's default when the account has none."""

    minimum_length: int = 8
    require_symbols: bool = False
    require_numbers: bool = False
    require_uppercase: bool = False
    require_lowercase: bool = False
    # AWS's default policy: at least three of the four character kinds.
    minimum_kinds: int = 3
    maximum_length: int = 128

    @classmethod
    def from_aws(cls, policy: dict[str, Any]) -> PasswordRules:
        return cls(
            minimum_length=int(policy.get("MinimumPasswordLength", 8) or 8),
            require_symbols=bool(policy.get("RequireSymbols")),
            require_numbers=bool(policy.get("RequireNumbers")),
            require_uppercase=bool(policy.get("RequireUppercaseCharacters")),
            require_lowercase=bool(policy.get("RequireLowercaseCharacters")),
            minimum_kinds=0,
        )

    def problems(self, password: str) -> list[str]:
        """What the password lacks, in words a person can act on (never the password)."""
        found: list[str] = []
        if len(password) < self.minimum_length:
            found.append(f"at least {self.minimum_length} characters")
        if len(password) > self.maximum_length:
            found.append(f"at most {self.maximum_length} characters")
        if any(not (" " <= ch <= "~") for ch in password):
            found.append("only letters, digits, spaces and ASCII symbols")
        kinds = _character_kinds(password)
        for wanted, kind, words in (
            (self.require_uppercase, "upper", "an uppercase letter"),
            (self.require_lowercase, "lower", "a lowercase letter"),
            (self.require_numbers, "digit", "a digit"),
            (self.require_symbols, "symbol", f"a symbol ({PASSWORD_SYMBOLS})"),
        ):
            if wanted and kind not in kinds:
                found.append(words)
        if len(kinds) < self.minimum_kinds:
            found.append(
                f"at least {self.minimum_kinds} of: uppercase letters, lowercase letters, "
                "digits, symbols"
            )
        return found

    def check(self, password: str) -> None:
        missing = self.problems(password or "")
        if missing:
            raise PasswordPolicyViolation(
                "The password does not meet the account's password policy: it needs "
                + "; ".join(missing)
                + "."
            )

    def generate(self) -> str:
        """A random password that satisfies these rules (and any stricter default)."""
        length = max(self.minimum_length, 20)
        pools = [string.ascii_uppercase, string.ascii_lowercase, string.digits, PASSWORD_SYMBOLS]
        chars = [secrets.choice(pool) for pool in pools]
        everything = "".join(pools)
        chars += [secrets.choice(everything) for _ in range(length - len(chars))]
        secrets.SystemRandom().shuffle(chars)
        return "".join(chars)


def _character_kinds(password: str) -> set[str]:
    kinds = set()
    for ch in password:
        if ch.isascii() and ch.isupper():
            kinds.add("upper")
        elif ch.isascii() and ch.islower():
            kinds.add("lower")
        elif ch.isascii() and ch.isdigit():
            kinds.add("digit")
        elif ch in PASSWORD_SYMBOLS:
            kinds.add("symbol")
    return kinds


def password_rules(iam: IAMClient) -> PasswordRules:
    """The account's policy; AWS's default when there is none or the key may not read it
    (CreateLoginProfile still enforces the real one, and its refusal is a field error too)."""
    try:
        policy = call(iam.get_account_password_policy, "read the account's password policy")
    except NotFound:
        return PasswordRules()
    except AwsAccessDenied:
        logger.info("may not read the password policy; checking against AWS's default")
        return PasswordRules()
    return PasswordRules.from_aws(dict(policy["PasswordPolicy"]))


# --- the IAM actions RoleUp uses ------------------------------------------------------------
#: What an action is checked against when an integration is added (and daily): the users of
#: the integration's path prefix, any group, the account's managed policies, its virtual MFA
#: devices, or the account as a whole ("*").
USER, GROUP, POLICY, MFA, ACCOUNT = "user", "group", "policy", "mfa", "account"


@dataclass(frozen=True)
class Permission:
    action: str
    resource: str
    #: Needed only by a read/write integration (a read-only one is never asked for it).
    writes: bool
    #: Asked of the policy simulator; False for what the check itself tolerates missing.
    checked: bool = True


#: Every IAM action RoleUp's code calls, in one place: the credential check asks for exactly
#: these, and tests/services/test_permissions_table.py fails when code calls one not listed.
PERMISSIONS: tuple[Permission, ...] = (
    # sync (bot.services.sync) and the credential check
    Permission("iam:GetAccountAuthorizationDetails", ACCOUNT, writes=False),
    Permission("iam:ListUsers", ACCOUNT, writes=False),
    Permission("iam:ListPolicies", ACCOUNT, writes=False),
    # access reviews' evidence (bot.services.credential_report): one report for the account
    Permission("iam:GenerateCredentialReport", ACCOUNT, writes=False),
    Permission("iam:GetCredentialReport", ACCOUNT, writes=False),
    # looking a user up, its groups (/groups, requests)
    Permission("iam:GetUser", USER, writes=False),
    Permission("iam:ListGroupsForUser", USER, writes=False),
    # onboarding
    Permission("iam:GetAccountPasswordPolicy", ACCOUNT, writes=True),
    Permission("iam:GetGroup", GROUP, writes=True),
    Permission("iam:GetPolicy", POLICY, writes=True),
    Permission("iam:CreateUser", USER, writes=True),
    Permission("iam:TagUser", USER, writes=True),  # CreateUser with tags, and linking
    Permission("iam:CreateLoginProfile", USER, writes=True),
    Permission("iam:AddUserToGroup", GROUP, writes=True),
    Permission("iam:RemoveUserFromGroup", GROUP, writes=True),
    Permission("iam:AttachUserPolicy", USER, writes=True),
    Permission("iam:DetachUserPolicy", USER, writes=True),
    # offboarding: its preview and every step, reads included
    Permission("iam:GetLoginProfile", USER, writes=True),
    Permission("iam:DeleteLoginProfile", USER, writes=True),
    Permission("iam:PutUserPolicy", USER, writes=True),
    Permission("iam:ListUserPolicies", USER, writes=True),
    Permission("iam:DeleteUserPolicy", USER, writes=True),
    Permission("iam:ListAttachedUserPolicies", USER, writes=True),
    Permission("iam:ListAccessKeys", USER, writes=True),
    Permission("iam:GetAccessKeyLastUsed", USER, writes=True),
    Permission("iam:UpdateAccessKey", USER, writes=True),
    Permission("iam:DeleteAccessKey", USER, writes=True),
    Permission("iam:ListSigningCertificates", USER, writes=True),
    Permission("iam:DeleteSigningCertificate", USER, writes=True),
    Permission("iam:ListSSHPublicKeys", USER, writes=True),
    Permission("iam:DeleteSSHPublicKey", USER, writes=True),
    Permission("iam:ListServiceSpecificCredentials", USER, writes=True),
    Permission("iam:DeleteServiceSpecificCredential", USER, writes=True),
    Permission("iam:ListMFADevices", USER, writes=True),
    Permission("iam:DeactivateMFADevice", USER, writes=True),
    Permission("iam:DeleteVirtualMFADevice", MFA, writes=True),
    Permission("iam:DeleteUser", USER, writes=True),
    # rotating RoleUp's own key (bot.services.key_rotation), on its own IAM user only; with
    # ListAccessKeys, UpdateAccessKey and DeleteAccessKey above. Not simulated on the prefix:
    # the key's user is rarely inside it, and only a rotation needs it (README).
    Permission("iam:CreateAccessKey", USER, writes=True, checked=False),
    # the credential check itself: without it RoleUp says it could not tell
    Permission("iam:SimulatePrincipalPolicy", ACCOUNT, writes=False, checked=False),
)


def permissions_needed(*, read_only: bool) -> list[Permission]:
    """What the credential check asks for an integration of that mode."""
    return [p for p in PERMISSIONS if p.checked and not (read_only and p.writes)]


def resource_arn(kind: str, *, partition: str, account: str, path_prefix: str | None) -> str:
    """The ARN an action of that kind is checked against: the users an integration may touch
    are exactly those of its prefix, so a key limited to `user/<prefix>/*` is enough."""
    base = f"arn:{partition}:iam::{account}"
    if kind == USER:
        return f"{base}:user{normalized_prefix(path_prefix)}*"
    if kind == GROUP:
        return f"{base}:group/*"
    if kind == POLICY:
        return f"{base}:policy/*"
    if kind == MFA:
        return f"{base}:mfa/*"
    return "*"


# --- reads ------------------------------------------------------------------------------------
def not_found(integration: Integration, user_name: str) -> UserNotFound:
    return UserNotFound(f"There is no IAM user {user_name} in {integration.name}.")


def get_user(iam: IAMClient, integration: Integration, user_name: str) -> dict[str, Any]:
    """The user, if it exists inside the integration's prefix; otherwise UserNotFound."""
    validate_username(user_name)
    user = call(
        iam.get_user,
        f"look up the IAM user {user_name}",
        {"NoSuchEntity": lambda: not_found(integration, user_name)},
        UserName=user_name,
    )["User"]
    if not in_prefix(user.get("Path", "/"), integration):
        # Same words as a missing user: outside the prefix is invisible through this integration.
        raise OutsidePrefix(str(not_found(integration, user_name)))
    return dict(user)


def user_id_of(user: dict[str, Any]) -> str:
    """The user's stable id (AIDA...): a user deleted and re-created under the same name gets a
    new one, so it tells "the same user" from "the same name"."""
    return str(user["UserId"])


# check_same_user's words for an access review's item (bot.services.review_decisions).
REVIEW_STARTED = "the access review started"
NOT_ASKED = "nothing was asked. Use /offboard or /groups for the new account if it needs it."


def check_same_user(
    user: dict[str, Any],
    user_name: str,
    expected_user_id: str | None,
    *,
    since: str = "this request was made",
    then: str = "nothing was changed. Make a new request.",
) -> None:
    """Refuse, before any write, a user that is not the one a request was made for (or, with
    `since`, the one an access review froze)."""
    if expected_user_id is not None and user_id_of(user) != expected_user_id:
        raise TargetReplaced(
            f"The IAM user {user_name} was deleted and re-created since {since} "
            f"(it is another user now): {then}"
        )


def user_exists(iam: IAMClient, user_name: str) -> bool:
    """Whether any user (inside the prefix or not) holds this name in the account."""
    try:
        call(iam.get_user, f"look up the IAM user {user_name}", UserName=user_name)
    except NotFound:
        return False
    return True


def _pages(iam: IAMClient, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
    """Every item of a Marker-paginated IAM list, one page in memory at a time."""
    method = getattr(iam, operation)
    what = operation.replace("_", " ")
    if "UserName" in kwargs:
        what += f" of {kwargs['UserName']}"
    marker: str | None = None
    while True:
        params = dict(kwargs, Marker=marker) if marker else kwargs
        page = call(method, what, **params)
        yield from page.get(key, [])
        if not page.get("IsTruncated"):
            return
        marker = page["Marker"]


def groups_of(iam: IAMClient, user_name: str) -> list[str]:
    groups = _pages(iam, "list_groups_for_user", "Groups", UserName=user_name)
    return sorted(g["GroupName"] for g in groups)


def require_group(iam: IAMClient, group: str) -> None:
    call(
        iam.get_group,
        f"look up the IAM group {group}",
        {"NoSuchEntity": lambda: GroupNotFound(f"There is no IAM group {group}.")},
        GroupName=group,
        MaxItems=1,
    )


def require_policy(iam: IAMClient, arn: str) -> None:
    call(
        iam.get_policy,
        f"look up the managed policy {arn}",
        {"NoSuchEntity": lambda: PolicyNotFound(f"There is no managed policy {arn}.")},
        PolicyArn=arn,
    )


# --- onboarding -------------------------------------------------------------------------------
@dataclass
class NewUser:
    user_name: str
    password: str = field(repr=False)
    groups: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


def check_new_user(
    iam: IAMClient, integration: Integration, new: NewUser, rules: PasswordRules | None = None
) -> None:
    """Every check that can be made before a write; raises field errors, writes nothing.
    `rules`, when the caller has read them already, saves reading the password policy again."""
    check_new_user_offline(integration, new)
    (rules or password_rules(iam)).check(new.password)
    if user_exists(iam, new.user_name):
        raise UserExists(f"The username {new.user_name} is already taken in this AWS account.")
    for group in new.groups:
        require_group(iam, group)
    for arn in new.policies:
        require_policy(iam, arn)


def check_new_user_offline(integration: Integration, new: NewUser) -> None:
    """The checks that need no AWS call: writability, then the shape of every input."""
    require_writable(integration, "create users")
    validate_username(new.user_name)
    for group in new.groups:
        validate_group_name(group)
    for arn in new.policies:
        validate_policy_arn(arn)
    if not new.password:
        raise PasswordPolicyViolation("An initial password is required.")


Undo = Callable[[], None]


def create_user(iam: IAMClient, integration: Integration, new: NewUser) -> dict[str, Any]:
    """Create the user with its login profile, groups and policies, or leave nothing behind."""
    require_writable(integration, "create users")
    name = new.user_name
    undo: list[tuple[str, Undo]] = []
    try:
        user = call(
            iam.create_user,
            f"create the IAM user {name}",
            {"EntityAlreadyExists": lambda: UserExists(f"The username {name} is already taken.")},
            UserName=name,
            Path=normalized_prefix(integration.path_prefix),
            Tags=[{"Key": k, "Value": v} for k, v in sorted(new.tags.items())],
        )["User"]
        undo.append(("delete the user", lambda: _quietly(iam.delete_user, UserName=name)))
        call(
            iam.create_login_profile,
            f"set the initial password of {name}",
            UserName=name,
            Password=new.password,
            PasswordResetRequired=True,
        )
        undo.append(
            ("delete the login profile", lambda: _quietly(iam.delete_login_profile, UserName=name))
        )
        for group in new.groups:
            _add_to_group(iam, name, group)
            undo.append((f"remove group {group}", _remover(iam, name, group)))
        for arn in new.policies:
            _attach(iam, name, arn)
            undo.append((f"detach {arn}", _detacher(iam, name, arn)))
    except RoleUpError as err:
        raise _rolled_back(err, name, undo) from err
    return dict(user)


def _add_to_group(iam: IAMClient, user_name: str, group: str) -> None:
    call(
        iam.add_user_to_group,
        f"add {user_name} to the group {group}",
        {"NoSuchEntity": lambda: GroupNotFound(f"There is no IAM group {group}.")},
        UserName=user_name,
        GroupName=group,
    )


def _attach(iam: IAMClient, user_name: str, arn: str) -> None:
    call(
        iam.attach_user_policy,
        f"attach {arn} to {user_name}",
        {"NoSuchEntity": lambda: PolicyNotFound(f"There is no managed policy {arn}.")},
        UserName=user_name,
        PolicyArn=arn,
    )


def _remover(iam: IAMClient, user_name: str, group: str) -> Undo:
    return lambda: _quietly(iam.remove_user_from_group, UserName=user_name, GroupName=group)


def _adder(iam: IAMClient, user_name: str, group: str) -> Undo:
    return lambda: _quietly(iam.add_user_to_group, UserName=user_name, GroupName=group)


def _detacher(iam: IAMClient, user_name: str, arn: str) -> Undo:
    return lambda: _quietly(iam.detach_user_policy, UserName=user_name, PolicyArn=arn)


def _quietly(operation: Callable[..., Any], **kwargs: Any) -> None:
    """An undo step: already gone is fine; any other failure propagates."""
    with contextlib.suppress(NotFound):
        call(operation, "undo a partial change", **kwargs)


def _rolled_back(err: RoleUpError, user_name: str, undo: list[tuple[str, Undo]]) -> RoleUpError:
    """Undo in reverse order; the error says whether everything was undone."""
    leftovers = []
    for what, step in reversed(undo):
        try:
            step()
        except RoleUpError:
            leftovers.append(what)
    if leftovers:
        return AwsError(
            f"{err} Undoing the partial change also failed ({', '.join(leftovers)}): "
            f"offboard {user_name} to remove what is left."
        )
    if not undo:
        return err
    rolled = type(err)(f"{err} Nothing was changed: the partial change was undone.")
    rolled.field = err.field
    return rolled


# --- groups ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupChange:
    added: list[str]
    removed: list[str]


def set_groups(
    iam: IAMClient,
    integration: Integration,
    user_name: str,
    groups: Sequence[str],
    *,
    expected_user_id: str | None = None,
) -> GroupChange:
    """Make the user's groups exactly `groups`, calling AWS only for the difference."""
    require_writable(integration, "change groups")
    for group in groups:
        validate_group_name(group)
    user = get_user(iam, integration, user_name)
    check_same_user(user, user_name, expected_user_id)
    current = set(groups_of(iam, user_name))
    wanted = set(groups)
    change = GroupChange(added=sorted(wanted - current), removed=sorted(current - wanted))
    _change_groups(iam, user_name, change)
    return change


def apply_group_change(
    iam: IAMClient,
    integration: Integration,
    user_name: str,
    added: Sequence[str],
    removed: Sequence[str],
    *,
    expected_user_id: str | None = None,
) -> GroupChange:
    """Add `added` and remove `removed`, touching no other group; all or nothing.

    Read against the user's groups now: a group in `added` the user already has, or in
    `removed` it no longer has, needs no call, and a group changed outside RoleUp since the
    request was made (in neither list) is left as it is. Returns what was actually changed.
    """
    require_writable(integration, "change groups")
    for group in [*added, *removed]:
        validate_group_name(group)
    both = sorted(set(added) & set(removed))
    if both:
        raise InvalidGroupName(
            f"The group {_shown(both[0])} cannot be both added and removed in one change."
        )
    user = get_user(iam, integration, user_name)
    check_same_user(user, user_name, expected_user_id)
    current = set(groups_of(iam, user_name))
    change = GroupChange(added=sorted(set(added) - current), removed=sorted(set(removed) & current))
    _change_groups(iam, user_name, change)
    return change


def _change_groups(iam: IAMClient, user_name: str, change: GroupChange) -> None:
    """Make `change`, or undo what was made of it and raise."""
    undo: list[tuple[str, Undo]] = []
    try:
        for group in change.added:
            _add_to_group(iam, user_name, group)
            undo.append((f"remove group {group}", _remover(iam, user_name, group)))
        for group in change.removed:
            call(
                iam.remove_user_from_group,
                f"remove {user_name} from the group {group}",
                UserName=user_name,
                GroupName=group,
            )
            undo.append((f"add group {group} back", _adder(iam, user_name, group)))
    except RoleUpError as err:
        raise _rolled_back(err, user_name, undo) from err


def tag_slack_user(
    iam: IAMClient, integration: Integration, user_name: str, slack_user_id: str
) -> dict[str, Any]:
    require_writable(integration, "link users")
    validate_slack_user(slack_user_id)
    user = get_user(iam, integration, user_name)
    call(
        iam.tag_user,
        f"tag {user_name} with its Slack user",
        UserName=user_name,
        Tags=[{"Key": TAG_SLACK_USER, "Value": slack_user_id}],
    )
    return user


# --- offboarding -------------------------------------------------------------------------------
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

OFFBOARD_STEPS: list[str] = [
    "deny_all",
    "login_profile",
    "deactivate_keys",
    "access_keys",
    "signing_certificates",
    "ssh_keys",
    "service_credentials",
    "mfa_devices",
    "inline_policies",
    "attached_policies",
    "groups",
    "delete_user",
    "confirm_gone",
]
STEP_LABELS: dict[str, str] = {
    "deny_all": "Attach a deny-all policy (live sessions stop)",
    "login_profile": "Delete the console password",
    "deactivate_keys": "Deactivate access keys",
    "access_keys": "Delete access keys",
    "signing_certificates": "Delete signing certificates",
    "ssh_keys": "Delete SSH keys",
    "service_credentials": "Delete service-specific credentials",
    "mfa_devices": "Remove MFA devices",
    "inline_policies": "Delete inline policies",
    "attached_policies": "Detach managed policies",
    "groups": "Remove from groups",
    "delete_user": "Delete the IAM user",
    "confirm_gone": "Confirm AWS no longer knows the user",
}
#: The steps that cut the user's access: all three at once, each tried even if another fails,
#: and nothing is removed until all three are done.
CUT_STEPS: tuple[str, ...] = ("deny_all", "login_profile", "deactivate_keys")
#: What is removed once access is cut: independent of one another, run concurrently.
CLEANUP_STEPS: tuple[str, ...] = (
    "access_keys",
    "signing_certificates",
    "ssh_keys",
    "service_credentials",
    "mfa_devices",
    "inline_policies",
    "attached_policies",
    "groups",
)
#: Then, one after the other: the user goes, and AWS is asked whether it is gone.
FINAL_STEPS: tuple[str, ...] = ("delete_user", "confirm_gone")
#: How many cleanup steps (and deletions within one step) run at once: a few, to stay well
#: inside IAM's request rate while offboarding several people.
CLEANUP_CONCURRENCY = 4


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
    kind: str
    name: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "detail": self.detail}


def plan_offboard(
    iam: IAMClient, integration: Integration, user_name: str, *, user: dict[str, Any] | None = None
) -> list[PlanItem]:
    """Exactly what offboarding will remove, read from AWS (for the approval preview); `user`,
    when the caller has just read it, saves reading it again."""
    if user is None:
        get_user(iam, integration, user_name)
    items: list[PlanItem] = []
    if _login_profile_exists(iam, user_name):
        items.append(PlanItem("login_profile", "console password"))
    for key in _pages(iam, "list_access_keys", "AccessKeyMetadata", UserName=user_name):
        items.append(PlanItem("access_key", key["AccessKeyId"], _key_detail(iam, key)))
    for device in _pages(iam, "list_mfa_devices", "MFADevices", UserName=user_name):
        items.append(PlanItem("mfa_device", device["SerialNumber"]))
    certs = _pages(iam, "list_signing_certificates", "Certificates", UserName=user_name)
    items += [PlanItem("signing_certificate", c["CertificateId"], c["Status"]) for c in certs]
    ssh = _pages(iam, "list_ssh_public_keys", "SSHPublicKeys", UserName=user_name)
    items += [PlanItem("ssh_key", k["SSHPublicKeyId"], k["Status"]) for k in ssh]
    for cred in _service_credentials(iam, user_name):
        items.append(
            PlanItem("service_credential", cred["ServiceSpecificCredentialId"], cred["ServiceName"])
        )
    for name in _pages(iam, "list_user_policies", "PolicyNames", UserName=user_name):
        if name != DENY_ALL_POLICY_NAME:
            items.append(PlanItem("inline_policy", name))
    attached = _pages(iam, "list_attached_user_policies", "AttachedPolicies", UserName=user_name)
    items += [
        PlanItem("attached_policy", p["PolicyName"], p["PolicyArn"])
        for p in attached
        if not is_aws_deny_all(p["PolicyArn"])  # RoleUp's own deny-all (the fallback)
    ]
    items += [PlanItem("group", g) for g in groups_of(iam, user_name)]
    return items


def _key_detail(iam: IAMClient, key: Any) -> str:
    used = call(
        iam.get_access_key_last_used,
        f"read when access key {key['AccessKeyId'][:4]}… was last used",
        AccessKeyId=key["AccessKeyId"],
    ).get("AccessKeyLastUsed", {})
    last = used.get("LastUsedDate")
    when = f"last used {last:%Y-%m-%d}" if last else "never used"
    return f"{key['Status'].lower()}, {when}"


def _login_profile_exists(iam: IAMClient, user_name: str) -> bool:
    try:
        call(iam.get_login_profile, f"read the login profile of {user_name}", UserName=user_name)
    except NotFound:
        return False
    return True


def _service_credentials(iam: IAMClient, user_name: str) -> list[Any]:
    # Not paginated by AWS: one call returns all of the user's credentials.
    answer = call(
        iam.list_service_specific_credentials,
        f"list the service-specific credentials of {user_name}",
        UserName=user_name,
    )
    return list(answer.get("ServiceSpecificCredentials", []))


StepReporter = Callable[[str, str], None]


def offboard_user(
    iam: IAMClient,
    integration: Integration,
    user_name: str,
    on_step: StepReporter,
    *,
    expected_user_id: str | None = None,
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
    refused before any write. `on_step` is only ever called on the caller's thread.
    """
    require_writable(integration, "offboard users")
    validate_username(user_name)
    try:
        user = get_user(iam, integration, user_name)
    except OutsidePrefix:
        raise
    except UserNotFound:
        for step in OFFBOARD_STEPS:
            on_step(step, "done")
        return False
    check_same_user(user, user_name, expected_user_id)
    if not _cut_access(iam, user_name, str(user.get("Arn") or ""), on_step):
        return True
    cleanup = [s for s in OFFBOARD_STEPS if s in CLEANUP_STEPS]
    outcome = _run_steps(
        cleanup, lambda step: _STEP_ACTIONS[step](iam, user_name), on_step, CLEANUP_CONCURRENCY
    )
    if outcome.gone:
        _all_done_from(cleanup[0], outcome, on_step)
        return True
    if outcome.failures:
        raise _steps_failed(user_name, outcome.failures)
    for index, step in enumerate(FINAL_STEPS, start=OFFBOARD_STEPS.index(FINAL_STEPS[0])):
        on_step(step, "running")
        try:
            _STEP_ACTIONS[step](iam, user_name)
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


def _run_steps(
    steps: Sequence[str],
    action: Callable[[str], None],
    on_step: StepReporter,
    bound: int,
) -> _Outcome:
    """Run `action` for every step, `bound` at a time, and report the steps in checklist order
    on the caller's thread (the reporter writes the store and updates Slack) while they run:
    the audit log and the checklist read as before, only sooner. Every step runs to its end
    whatever the others do; a failure is reported and kept, not raised."""
    outcome = _Outcome()
    crashed: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=max(1, min(bound, len(steps))))
    try:
        # All submitted before anything is reported: the calls do not wait for the store or
        # Slack. Each task in a copy of this context, so its log lines keep the request's.
        futures = [pool.submit(contextvars.copy_context().run, action, step) for step in steps]
        for step, future in zip(steps, futures, strict=True):
            if not outcome.gone:
                on_step(step, "running")
            error = future.exception()
            if outcome.gone or error is None or isinstance(error, UserNotFound):
                outcome.gone = outcome.gone or error is not None
                on_step(step, "done")
                outcome.done.add(step)
            elif isinstance(error, RoleUpError):
                on_step(step, "failed")
                outcome.failures.append((step, error))
            else:
                crashed = crashed or error
    finally:
        # A reporter that raised (the request taken over) stops what has not started yet.
        pool.shutdown(wait=True, cancel_futures=True)
    if crashed is not None:
        raise crashed
    return outcome


def _all_done_from(first: str, outcome: _Outcome, on_step: StepReporter) -> None:
    """The user is gone: every step from `first` on that was not reported done has nothing
    left to do (a failed one included)."""
    for step in OFFBOARD_STEPS[OFFBOARD_STEPS.index(first) :]:
        if step not in outcome.done:
            on_step(step, "done")


def _cut_access(iam: IAMClient, user_name: str, user_arn: str, on_step: StepReporter) -> bool:
    """Try every cut, all at once; True when all are done, False when the user is gone (all
    done too).

    Raises AccessCutFailed, after trying them all, if any cut failed.
    """
    actions: dict[str, Callable[[IAMClient, str], None]] = {
        "deny_all": lambda client, name: _deny_all(client, name, aws_deny_all_arn(user_arn)),
        "login_profile": _delete_login_profile,
        "deactivate_keys": _deactivate_keys,
    }
    outcome = _run_steps(
        CUT_STEPS, lambda step: actions[step](iam, user_name), on_step, len(CUT_STEPS)
    )
    if outcome.gone:
        # Gone: every cut (a failed one too) and every later step has nothing left to do.
        _all_done_from(CUT_STEPS[0], outcome, on_step)
        return False
    if outcome.failures:
        raise _cuts_failed(user_name, outcome.failures)
    return True


def _cuts_failed(user_name: str, failures: list[tuple[str, RoleUpError]]) -> AccessCutFailed:
    failed = [step for step, _ in failures]
    done = [step for step in CUT_STEPS if step not in failed]
    reasons = " ".join(f"“{STEP_LABELS[step]}” failed: {err}" for step, err in failures)
    done_part = (
        "Done: " + ", ".join(f"“{STEP_LABELS[step]}”" for step in done) + ". " if done else ""
    )
    first_step, first_err = failures[0]
    return AccessCutFailed(
        f"Offboarding {user_name} could not cut all of its access, so nothing else was "
        f"removed yet. {reasons} {done_part}"
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
    reasons = " ".join(f"“{STEP_LABELS[step]}” failed: {err}" for step, err in failures)
    return StepFailed(
        f"Offboarding {user_name} cut its access but could not finish removing it. {reasons} "
        "Run it again to finish from there.",
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


def _gone(user_name: str) -> UserNotFound:
    return UserNotFound(f"{user_name} is already gone.")


def _call_on_user(operation: Callable[..., Any], what: str, **kwargs: Any) -> Any:
    """A step's call: the user vanishing midway surfaces as UserNotFound (done)."""
    user_name = kwargs["UserName"]
    return call(operation, what, {"NoSuchEntity": lambda: _gone(user_name)}, **kwargs)


def _deny_all(iam: IAMClient, user_name: str, fallback_arn: str = AWS_DENY_ALL_ARN) -> None:
    """Put the inline deny-all; if AWS refuses it (no PutUserPolicy, the user's inline policies
    at their size limit...), attach AWS's AWSDenyAll managed policy instead."""
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
        attached = list(
            _user_pages(iam, "list_attached_user_policies", "AttachedPolicies", user_name)
        )
    except UserNotFound:
        raise
    except RoleUpError:
        return False  # cannot tell: the step fails with the errors it had
    return any(is_aws_deny_all(policy["PolicyArn"]) for policy in attached)


def _delete_login_profile(iam: IAMClient, user_name: str) -> None:
    if _login_profile_exists(iam, user_name):
        _ignore_missing(
            iam.delete_login_profile, f"delete the password of {user_name}", UserName=user_name
        )


def _access_keys(iam: IAMClient, user_name: str) -> list[Any]:
    return list(_user_pages(iam, "list_access_keys", "AccessKeyMetadata", user_name))


def _for_each(items: Sequence[T], remove: Callable[[T], None], *, bound: int = 1) -> None:
    """Remove each item (one IAM call each), `bound` at a time. A cleanup step removes its items
    one by one, since the steps themselves already run CLEANUP_CONCURRENCY at a time; the keys'
    deactivation, a cut, does them all at once. All are tried, then the first error (in the
    items' order) is raised."""
    if bound <= 1 or len(items) <= 1:
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
    with ThreadPoolExecutor(max_workers=min(bound, len(items))) as pool:
        futures = [pool.submit(contextvars.copy_context().run, remove, item) for item in items]
    for future in futures:
        future.result()


def _deactivate_keys(iam: IAMClient, user_name: str) -> None:
    active = [k for k in _access_keys(iam, user_name) if k["Status"] != "Inactive"]
    _for_each(
        active,
        lambda key: _ignore_missing(
            iam.update_access_key,
            f"deactivate an access key of {user_name}",
            UserName=user_name,
            AccessKeyId=key["AccessKeyId"],
            Status="Inactive",
        ),
        bound=CLEANUP_CONCURRENCY,
    )


def _delete_keys(iam: IAMClient, user_name: str) -> None:
    _for_each(
        _access_keys(iam, user_name),
        lambda key: _ignore_missing(
            iam.delete_access_key,
            f"delete an access key of {user_name}",
            UserName=user_name,
            AccessKeyId=key["AccessKeyId"],
        ),
    )


def _delete_certificates(iam: IAMClient, user_name: str) -> None:
    _for_each(
        list(_user_pages(iam, "list_signing_certificates", "Certificates", user_name)),
        lambda cert: _ignore_missing(
            iam.delete_signing_certificate,
            f"delete a signing certificate of {user_name}",
            UserName=user_name,
            CertificateId=cert["CertificateId"],
        ),
    )


def _delete_ssh_keys(iam: IAMClient, user_name: str) -> None:
    _for_each(
        list(_user_pages(iam, "list_ssh_public_keys", "SSHPublicKeys", user_name)),
        lambda key: _ignore_missing(
            iam.delete_ssh_public_key,
            f"delete an SSH key of {user_name}",
            UserName=user_name,
            SSHPublicKeyId=key["SSHPublicKeyId"],
        ),
    )


def _delete_service_credentials(iam: IAMClient, user_name: str) -> None:
    answer = _call_on_user(
        iam.list_service_specific_credentials,
        f"list the service-specific credentials of {user_name}",
        UserName=user_name,
    )
    for cred in answer.get("ServiceSpecificCredentials", []):
        _ignore_missing(
            iam.delete_service_specific_credential,
            f"delete a service-specific credential of {user_name}",
            UserName=user_name,
            ServiceSpecificCredentialId=cred["ServiceSpecificCredentialId"],
        )


def _remove_mfa_devices(iam: IAMClient, user_name: str) -> None:
    for device in list(_user_pages(iam, "list_mfa_devices", "MFADevices", user_name)):
        serial = device["SerialNumber"]
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


def _delete_inline_policies(iam: IAMClient, user_name: str) -> None:
    names = list(_user_pages(iam, "list_user_policies", "PolicyNames", user_name))
    _for_each(
        [n for n in names if n != DENY_ALL_POLICY_NAME],
        lambda name: _delete_inline(iam, user_name, name),
    )


def _delete_inline(iam: IAMClient, user_name: str, policy_name: str) -> None:
    _ignore_missing(
        iam.delete_user_policy,
        f"delete the inline policy {policy_name} of {user_name}",
        UserName=user_name,
        PolicyName=policy_name,
    )


def _detach_policies(iam: IAMClient, user_name: str) -> None:
    # RoleUp's deny-all (the AWSDenyAll fallback) stays until the user is deleted.
    _detach(iam, user_name, lambda arn: not is_aws_deny_all(arn))


def _detach(iam: IAMClient, user_name: str, which: Callable[[str], bool]) -> None:
    """Detach the user's managed policies whose ARN `which` picks."""
    attached = list(_user_pages(iam, "list_attached_user_policies", "AttachedPolicies", user_name))
    _for_each(
        [p["PolicyArn"] for p in attached if which(p["PolicyArn"])],
        lambda arn: _ignore_missing(
            iam.detach_user_policy,
            f"detach {arn} from {user_name}",
            UserName=user_name,
            PolicyArn=arn,
        ),
    )


def _remove_groups(iam: IAMClient, user_name: str) -> None:
    _for_each(
        [g["GroupName"] for g in _user_pages(iam, "list_groups_for_user", "Groups", user_name)],
        lambda group: _ignore_missing(
            iam.remove_user_from_group,
            f"remove {user_name} from the group {group}",
            UserName=user_name,
            GroupName=group,
        ),
    )


def _delete_user(iam: IAMClient, user_name: str) -> None:
    # The deny-all goes last: by now nothing else grants the user anything.
    _detach(iam, user_name, is_aws_deny_all)
    policies = list(_user_pages(iam, "list_user_policies", "PolicyNames", user_name))
    for name in policies:
        _delete_inline(iam, user_name, name)
    _call_on_user(iam.delete_user, f"delete the IAM user {user_name}", UserName=user_name)


def _confirm_gone(iam: IAMClient, user_name: str) -> None:
    if user_exists(iam, user_name):
        raise AwsError(f"AWS still lists {user_name} after deleting it.")


def _user_pages(iam: IAMClient, operation: str, key: str, user_name: str) -> Iterator[Any]:
    try:
        yield from _pages(iam, operation, key, UserName=user_name)
    except NotFound as err:
        raise _gone(user_name) from err


def _ignore_missing(operation: Callable[..., Any], what: str, **kwargs: Any) -> None:
    """A removal whose target is already gone has done its job."""
    with contextlib.suppress(NotFound):
        call(operation, what, **kwargs)


_STEP_ACTIONS: dict[str, Callable[[IAMClient, str], None]] = {
    "deny_all": _deny_all,
    "login_profile": _delete_login_profile,
    "deactivate_keys": _deactivate_keys,
    "access_keys": _delete_keys,
    "signing_certificates": _delete_certificates,
    "ssh_keys": _delete_ssh_keys,
    "service_credentials": _delete_service_credentials,
    "mfa_devices": _remove_mfa_devices,
    "inline_policies": _delete_inline_policies,
    "attached_policies": _detach_policies,
    "groups": _remove_groups,
    "delete_user": _delete_user,
    "confirm_gone": _confirm_gone,
}
