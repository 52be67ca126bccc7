"""Parsing the text of every slash command: pure functions, no Slack or store access.

Commands are declared with should_escape: true, so a mention arrives as `<@U123|name>` (or
`<@U123>`), a user group as `<!subteam^S123|@team>` and a channel as `<#C123|name>`. Names may
be quoted ("two words"), and Slack clients like to turn quotes into curly ones, so both kinds
are understood. Anything that does not fit raises UsageError, whose message is the usage line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from bot.services import reasons
from bot.services.errors import InvalidInput
from bot.services.reasons import Justification
from bot.slack import ids
from bot.slack.mrkdwn import code, strip_control, truncate

MAX_TEXT = 1000  # far above any real command; longer text is refused, not parsed
MAX_FILTER = 100
MAX_AUDIT = 50
DEFAULT_AUDIT = 10

IAM_USERNAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
INTEGRATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u201d": "\u201d", "\u2018": "\u2019"}

USAGE = {
    "/offboard": (
        "Usage: `/offboard <iam-username> [integration] [ticket:SEC-123] [-- reason]`, or "
        "`/offboard @person [-- reason]` for every account linked to them."
    ),
    "/onboard invite": (
        "Usage: `/onboard invite @user [integration]`, e.g. `/onboard invite @alice prod`."
    ),
    "/onboard": (
        "Usage: `/onboard` opens the onboarding form; `/onboard invite @user` sends an invite."
    ),
    "/accounts": "Usage: `/accounts [integration] [filter]`, e.g. `/accounts prod alice`.",
    "/groups": "Usage: `/groups <iam-username> [integration]`, e.g. `/groups alice`.",
    "/roleup": (
        "Usage: `/roleup help | integrations | integration add | integration edit <name> | "
        "integration remove <name> [-- reason] | "
        "sync [name] | link @user <iam-username> [integration] | audit [n] | "
        "breakglass [integration:NAME] <group> <duration ≤ 4h> <reason> | "
        "review start [integration] [days] | review status`"
    ),
}


class UsageError(InvalidInput):
    """The command text cannot be understood; the message says how to write it."""


def usage_error(command: str, problem: str | None = None) -> UsageError:
    line = USAGE.get(command, "")
    return UsageError(f"{problem} {line}".strip() if problem else line)


def tokenize(text: str, command: str = "/roleup") -> list[str]:
    """Split on whitespace, keeping quoted runs together; control characters are dropped."""
    if len(text) > MAX_TEXT:
        raise usage_error(command, f"That is too long ({len(text)} characters).")
    text = strip_control(text)
    tokens: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
            continue
        if char in _QUOTES:
            end = text.find(_QUOTES[char], i + 1)
            if char in "\u201c\u201d":  # either curly quote may close a curly-quoted run
                ends = [
                    e for e in (text.find("\u201c", i + 1), text.find("\u201d", i + 1)) if e != -1
                ]
                end = min(ends) if ends else -1
            if end == -1:
                raise usage_error(command, "A quote is not closed.")
            tokens.append(text[i + 1 : end])
            i = end + 1
            continue
        j = i
        while j < len(text) and not text[j].isspace():
            j += 1
        tokens.append(text[i:j])
        i = j
    return tokens


def quote(token: str) -> str:
    """The inverse of tokenize for one token (used by tests and by the demo terminal)."""
    if token and not any(c.isspace() or c in _QUOTES for c in token):
        return token
    for mark in ('"', "'"):
        if not any(c == mark or _QUOTES.get(c) == _QUOTES[mark] for c in token):
            return f"{mark}{token}{mark}"
    raise ValueError("a token holding both kinds of quote cannot be quoted")


# `... -- reason text`: everything after the first ` -- ` is the reason.
_REASON_MARK = re.compile(r"(?:^|\s)--(?:\s|$)")
_TICKET = re.compile(r"ticket:(\S*)", re.IGNORECASE)
# should_escape: true makes Slack wrap a typed link as <https://…> or <https://…|label>.
_SLACK_LINK = re.compile(r"<(https?://[^|>\s]+)(?:\|[^>]*)?>")
JUSTIFICATION_USAGE = "add ` -- reason text` (and `ticket:SEC-123` or `ticket:https://…` before it)"


def parse_justification(text: str, command: str) -> tuple[str, Justification]:
    """Split `words [ticket:T] [-- reason text]` into the words and the reason and ticket.

    The reason is taken as typed (Slack's &amp; &lt; &gt; undone, a wrapped link unwrapped);
    it is checked by bot.services.reasons and escaped wherever it is shown."""
    if len(text) > MAX_TEXT:  # the caller adds its usage line to every refusal
        raise UsageError(f"That is too long ({len(text)} characters).")
    words, reason = text, None
    mark = _REASON_MARK.search(text)
    if mark is not None:
        words, reason = text[: mark.start()], _from_slack(text[mark.end() :])
    tickets = _TICKET.findall(words)
    if len(tickets) > 1:
        raise UsageError("Give one ticket only.")
    words = _TICKET.sub(" ", words)
    ticket = _SLACK_LINK.sub(r"\1", tickets[0]) if tickets else None
    if tickets and not ticket:
        raise UsageError(f"Say which ticket: {JUSTIFICATION_USAGE}.")
    try:
        return words.strip(), reasons.clean(reason, ticket)
    except InvalidInput as exc:
        raise UsageError(str(exc)) from None


def _from_slack(text: str) -> str:
    text = _SLACK_LINK.sub(r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def parse_user(token: str) -> str | None:
    """The Slack user id of a mention (`<@U123|name>` or `<@U123>`), or None."""
    match = ids.USER_MENTION.fullmatch(token.strip())
    if match:
        return match.group(1)
    if ids.BARE_USER.fullmatch(token):
        return token
    return None


def check_iam_username(token: str, command: str) -> str:
    if not IAM_USERNAME.fullmatch(token):
        shown = code(truncate(token, 40))
        raise usage_error(
            command,
            f"{shown} is not an IAM username (up to 64 letters, digits and + = , . @ _ -).",
        )
    return token


def check_integration_name(token: str, command: str) -> str:
    if not INTEGRATION_NAME.fullmatch(token):
        raise usage_error(command, f"{code(truncate(token, 40))} is not an integration name.")
    return token


# --- /accounts ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AccountsArgs:
    """`first` may be an integration name or a filter: the handler decides, knowing the names."""

    first: str | None = None
    rest: str | None = None

    def split(self, integration_names: set[str]) -> tuple[str | None, str | None]:
        """(integration, filter) given the integrations that exist."""
        if self.first is not None and self.first in integration_names:
            return self.first, self.rest
        if self.rest is not None:
            # Two words and the first is not an integration: the user meant one.
            raise usage_error("/accounts", f"There is no integration {code(self.first)}.")
        return None, self.first


def parse_accounts(text: str) -> AccountsArgs:
    tokens = tokenize(text, "/accounts")
    if len(tokens) > 2:
        raise usage_error("/accounts", "Too many words.")
    for token in tokens:
        if len(token) > MAX_FILTER or not token.strip():
            raise usage_error("/accounts", "A filter is 1 to 100 characters.")
    first = tokens[0] if tokens else None
    rest = tokens[1] if len(tokens) > 1 else None
    return AccountsArgs(first, rest)


# --- /groups ------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupsArgs:
    user_name: str
    integration: str | None = None


def parse_groups(text: str) -> GroupsArgs:
    tokens = tokenize(text, "/groups")
    if not tokens:
        raise usage_error("/groups", "Which user?")
    if len(tokens) > 2:
        raise usage_error("/groups", "Too many words.")
    user_name = check_iam_username(tokens[0], "/groups")
    integration = check_integration_name(tokens[1], "/groups") if len(tokens) > 1 else None
    return GroupsArgs(user_name, integration)


# --- /onboard -----------------------------------------------------------------------------
@dataclass(frozen=True)
class OnboardArgs:
    invite: bool = False
    invite_text: str = ""  # what follows `invite`, for the invites handler to parse


def parse_onboard(text: str) -> OnboardArgs:
    tokens = tokenize(text, "/onboard")
    if not tokens:
        return OnboardArgs()
    if tokens[0].lower() == "invite":
        rest = strip_control(text).strip()[len(tokens[0]) :].strip()
        return OnboardArgs(invite=True, invite_text=rest)
    raise usage_error("/onboard", f"Unknown option {code(truncate(tokens[0], 40))}.")


# --- /roleup ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoleupCommand:
    # help | integrations | integration_add | integration_edit | integration_remove | sync | ...
    name: str
    integration: str | None = None
    slack_user: str | None = None
    user_name: str | None = None
    count: int = DEFAULT_AUDIT
    why: Justification = reasons.NONE  # `integration remove <name> [ticket:…] [-- reason]`
    group: str | None = None
    seconds: int = 0
    reason: str = ""


def parse_roleup(text: str) -> RoleupCommand:
    try:
        text, why = parse_justification(text, "/roleup")
    except UsageError as exc:
        raise usage_error("/roleup", str(exc)) from None
    tokens = tokenize(text, "/roleup")
    if not tokens:
        parsed = RoleupCommand("help")
    else:
        head, args = tokens[0].lower(), tokens[1:]
        parser = _ROLEUP.get(head)
        if parser is None:
            raise usage_error("/roleup", f"Unknown subcommand {code(truncate(tokens[0], 40))}.")
        parsed = parser(args)
    if why == reasons.NONE:
        return parsed
    if parsed.name != "integration_remove":
        raise usage_error("/roleup", "Only `integration remove` takes a reason or a ticket.")
    return replace(parsed, why=why)


def _no_args(name: str) -> Callable[[list[str]], RoleupCommand]:
    def parse(args: list[str]) -> RoleupCommand:
        if args:
            raise usage_error("/roleup", f"`{name}` takes no arguments.")
        return RoleupCommand(name)

    return parse


INTEGRATION_ACTIONS = (
    "Say `integration add`, `integration edit <name>` or `integration remove <name>`."
)


def _integration(args: list[str]) -> RoleupCommand:
    if not args:
        raise usage_error(
            "/roleup",
            "Say `integration add`, `integration edit <name>` or `integration remove <name>`.",
        )
    action = args[0].lower()
    if action == "add" and len(args) == 1:
        return RoleupCommand("integration_add")
    if action == "edit" and len(args) == 2:
        return RoleupCommand(
            "integration_edit", integration=check_integration_name(args[1], "/roleup")
        )
    if action == "remove" and len(args) == 2:
        return RoleupCommand(
            "integration_remove", integration=check_integration_name(args[1], "/roleup")
        )
    raise usage_error(
        "/roleup",
        "Say `integration add`, `integration edit <name>` or `integration remove <name>`.",
    )


def _sync(args: list[str]) -> RoleupCommand:
    if len(args) > 1:
        raise usage_error("/roleup", "`sync` takes at most one integration name.")
    name = check_integration_name(args[0], "/roleup") if args else None
    return RoleupCommand("sync", integration=name)


def _link(args: list[str]) -> RoleupCommand:
    if len(args) not in (2, 3):
        raise usage_error("/roleup", "`link` needs a @user and an IAM username.")
    slack_user = parse_user(args[0])
    if slack_user is None:
        raise usage_error(
            "/roleup", f"{code(truncate(args[0], 40))} is not a @mention of a person."
        )
    user_name = check_iam_username(args[1], "/roleup")
    integration = check_integration_name(args[2], "/roleup") if len(args) == 3 else None
    return RoleupCommand(
        "link", integration=integration, slack_user=slack_user, user_name=user_name
    )


def _audit(args: list[str]) -> RoleupCommand:
    if len(args) > 1:
        raise usage_error("/roleup", "`audit` takes at most a number.")
    if not args:
        return RoleupCommand("audit")
    raw = args[0]
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_AUDIT:
        raise usage_error("/roleup", f"`audit` takes a number from 1 to {MAX_AUDIT}.")
    return RoleupCommand("audit", count=int(raw))


GROUP_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)
# 30m, 1h, 2h30m, 4h: hours and/or minutes, small enough never to overflow anything.
DURATION = re.compile(r"(?:(\d{1,2})h)?(?:(\d{1,3})m)?", re.IGNORECASE)


def parse_duration(token: str) -> int | None:
    """Seconds of `30m`, `1h`, `2h30m`; None when the token is not a duration."""
    match = DURATION.fullmatch(token)
    if match is None or not any(match.groups()):
        return None
    hours, minutes = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60


def _breakglass(args: list[str]) -> RoleupCommand:
    """`breakglass [integration:NAME] <group> <duration> <reason…>`; the bounds of the
    duration and the reason are the service's to check."""
    integration = None
    if args and args[0].lower().startswith("integration:"):
        integration = check_integration_name(args[0].split(":", 1)[1], "/roleup")
        args = args[1:]
    if len(args) < 2:
        raise usage_error("/roleup", "`breakglass` needs a group, a duration and a reason.")
    group, duration, words = args[0], args[1], args[2:]
    if not GROUP_NAME.fullmatch(group):
        raise usage_error("/roleup", f"{code(truncate(group, 40))} is not an IAM group name.")
    seconds = parse_duration(duration)
    if seconds is None:
        raise usage_error(
            "/roleup", f"{code(truncate(duration, 40))} is not a duration like 30m, 1h or 2h30m."
        )
    reason = " ".join(words).strip()
    if not reason:
        raise usage_error("/roleup", "A break-glass grant needs a reason.")
    return RoleupCommand(
        "breakglass", integration=integration, group=group, seconds=seconds, reason=reason
    )


MAX_REVIEW_DAYS = 90


def _review(args: list[str]) -> RoleupCommand:
    """`review start [integration] [days]` (due in 14 days unless said) or `review status`."""
    if args and args[0].lower() == "status" and len(args) == 1:
        return RoleupCommand("review_status")
    if not args or args[0].lower() != "start" or len(args) > 3:
        raise usage_error("/roleup", "Say `review start [integration] [days]` or `review status`.")
    integration, days = None, 14
    rest = args[1:]
    # Positional: with two words the first is the integration (a name may be all digits), so
    # `review start 10 20` never quietly drops the 10; one word of digits is the days.
    if len(rest) == 2 or (rest and not (rest[0].isascii() and rest[0].isdigit())):
        integration = check_integration_name(rest.pop(0), "/roleup")
    if rest:
        token = rest[0]
        if not (token.isascii() and token.isdigit()):
            raise usage_error("/roleup", "Say `review start [integration] [days]`.")
        if len(token) > 3 or not 1 <= int(token) <= MAX_REVIEW_DAYS:
            raise usage_error("/roleup", f"A review is due in 1 to {MAX_REVIEW_DAYS} days.")
        days = int(token)
    return RoleupCommand("review_start", integration=integration, count=days)


_ROLEUP = {
    "help": _no_args("help"),
    "integrations": _no_args("integrations"),
    "integration": _integration,
    "sync": _sync,
    "link": _link,
    "audit": _audit,
    "breakglass": _breakglass,
    "review": _review,
}


@dataclass(frozen=True)
class OffboardArgs:
    slack_user: str | None = None
    user_name: str | None = None
    integration: str | None = None
    why: Justification = reasons.NONE

    @property
    def asked_for(self) -> str:
        return f"<@{self.slack_user}>" if self.slack_user else str(self.user_name)


def parse_offboard(text: str) -> OffboardArgs:
    """`@person`, or an IAM username optionally followed by an integration name; then an
    optional `ticket:…` and ` -- reason`."""
    try:
        text, why = parse_justification(text, "/offboard")
        tokens = tokenize(text, "/offboard")
        if not tokens or len(tokens) > 2:
            raise UsageError("Say whom to offboard." if not tokens else "Too many words.")
        slack_user = parse_user(tokens[0])
        if slack_user is not None:
            if len(tokens) > 1:
                raise UsageError("`@person` offboards every account linked to them: no more words.")
            return OffboardArgs(slack_user=slack_user, why=why)
        user_name = check_iam_username(tokens[0], "/offboard")
        integration = check_integration_name(tokens[1], "/offboard") if len(tokens) > 1 else None
    except UsageError as exc:
        raise UsageError(f"{exc} {USAGE['/offboard']}".strip()) from None
    return OffboardArgs(user_name=user_name, integration=integration, why=why)


@dataclass(frozen=True)
class InviteArgs:
    slack_user_id: str
    integration: str | None


def parse_invite(text: str) -> InviteArgs:
    """`@user [integration]` (what follows `invite`); InvalidInput carries the usage line."""
    words = text.split()
    if words and words[0].lower() == "invite":
        words = words[1:]
    if not words:
        raise InvalidInput(f"Who should get the invite? {USAGE['/onboard invite']}")
    if len(words) > 2:
        raise InvalidInput(f"Too many words. {USAGE['/onboard invite']}")
    mention = ids.USER_MENTION.fullmatch(words[0])
    if mention is None:
        raise InvalidInput(f"Mention the person with @. {USAGE['/onboard invite']}")
    integration = words[1] if len(words) > 1 else None
    if integration is not None and not INTEGRATION_NAME.fullmatch(integration):
        raise InvalidInput(f"That is not an integration name. {USAGE['/onboard invite']}")
    return InviteArgs(mention.group(1), integration)
