"""Pure IAM operations: an IAM client and an Integration row in, AWS changes out. No store.

Every function here enforces the integration's rules before it reaches AWS: a read-only
integration refuses writes before any call, and a user whose path is outside the integration's
path prefix is reported as not found and never touched. Offboarding's steps are in
bot.services.offboard_steps.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.services.aws import call
from bot.services.errors import (
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
    TargetReplaced,
    UserExists,
    UserNotFound,
)
from bot.slack import ids
from storage.models import Integration

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

logger = logging.getLogger(__name__)

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
    if not ids.is_user(slack_user_id):
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


def pages(iam: IAMClient, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
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
    groups = pages(iam, "list_groups_for_user", "Groups", UserName=user_name)
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
