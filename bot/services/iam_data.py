"""IAM's answers read as untrusted input: every value checked before it is stored or shown.

Whoever can write IAM (tag a user, or answer in AWS's place) must not be able to stop a sync,
overflow a column or get text into Slack unescaped. So each value read from AWS is held to
IAM's own rules, which are also the store's column sizes:

- identifiers (user and group names, ids, paths, ARNs, policy names) are never cut, since a
  cut name would point at another IAM entity: an entity whose identifier breaks IAM's rules is
  skipped, a policy or group name in a list is dropped, and each is reported;
- free text (tag keys and values) is cut to IAM's limits and reported;
- the link tag (`roleup:slack-user`) must be a Slack user id, or it is ignored and reported.

Nothing here escapes for Slack: what is shown goes through bot/slack/mrkdwn.py at the edge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.services.iam import (
    GROUP_NAME_RE,
    PATH_RE,
    POLICY_ARN_RE,
    TAG_SLACK_USER,
    USERNAME_RE,
)
from bot.slack import ids

# IAM's limits (and the store's column sizes: storage/models.py).
MAX_PATH = 512
MAX_ARN = 2048
MAX_ID = 128
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_TAGS = 50
POLICY_NAME_RE = re.compile(r"[A-Za-z0-9+=,.@_-]{1,128}")
ID_RE = re.compile(r"[A-Za-z0-9]{1,128}")
ARN_RE = re.compile(r"arn:[\x21-\x7e]{1,2044}")
SHOWN_LIMIT = 80  # characters of an unreadable value kept in a report


@dataclass(frozen=True)
class DataProblem:
    """One value from IAM that was not stored as read. `subject` and `value` are IAM's raw
    text (escape them to show them); `what` is this app's own words."""

    subject: str
    what: str
    value: str = ""

    @property
    def key(self) -> str:
        return f"{self.subject}\x1f{self.what}\x1f{self.value}"

    def to_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "what": self.what, "value": self.value}


def shown(value: Any) -> str:
    """A raw value as it may be kept in a report: a string, at most SHOWN_LIMIT characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= SHOWN_LIMIT else text[: SHOWN_LIMIT - 1] + "…"


def _fits(pattern: re.Pattern[str], value: Any) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def valid_path(value: Any) -> bool:
    return _fits(PATH_RE, value) and len(value) <= MAX_PATH


def check_identity(
    kind: str, raw: dict[str, Any], name_key: str, problems: list[DataProblem]
) -> bool:
    """Whether an entity's name, id, ARN and path are as IAM makes them; reports if not."""
    name = raw.get(name_key)
    name_re = USERNAME_RE if kind == "user" else GROUP_NAME_RE
    if not _fits(name_re, name):
        problems.append(DataProblem(shown(name), f"{kind} skipped: its name is not one IAM allows"))
        return False
    id_key = "UserId" if kind == "user" else "GroupId"
    for what, ok in (
        ("id", _fits(ID_RE, raw.get(id_key, ""))),
        ("ARN", _fits(ARN_RE, raw.get("Arn", ""))),
        ("path", valid_path(raw.get("Path", "/"))),
    ):
        if not ok:
            problems.append(
                DataProblem(str(name), f"{kind} skipped: its {what} is not one IAM allows")
            )
            return False
    return True


def names(
    owner: str, what: str, values: Any, pattern: re.Pattern[str], problems: list[DataProblem]
) -> list[str]:
    """The well-formed names of a list (groups, inline policies); the rest dropped, reported."""
    kept = []
    for value in values if isinstance(values, list) else []:
        if _fits(pattern, value):
            kept.append(value)
        else:
            problems.append(
                DataProblem(owner, f"{what} ignored: not a name IAM allows", shown(value))
            )
    return sorted(set(kept))


def policies(owner: str, values: Any, problems: list[DataProblem]) -> list[tuple[str, str]]:
    """Attached managed policies as (ARN, name); malformed ones dropped and reported."""
    kept: set[tuple[str, str]] = set()
    for value in values if isinstance(values, list) else []:
        arn = value.get("PolicyArn") if isinstance(value, dict) else None
        name = value.get("PolicyName") if isinstance(value, dict) else None
        if valid_policy(arn, name):
            kept.add((str(arn), str(name)))
        else:
            problems.append(
                DataProblem(owner, "attached policy ignored: not one IAM allows", shown(name))
            )
    return sorted(kept)


def valid_policy(arn: Any, name: Any) -> bool:
    return (
        _fits(POLICY_ARN_RE, arn)
        and len(arn) <= MAX_ARN
        and _fits(POLICY_NAME_RE, name)
        and arn.endswith("/" + name)
    )


def tags(owner: str, values: Any, problems: list[DataProblem]) -> dict[str, str]:
    """Tags within IAM's limits: keys over 128 characters dropped, values cut to 256, at most
    50; each change reported."""
    kept: dict[str, str] = {}
    for tag in values if isinstance(values, list) else []:
        key = tag.get("Key") if isinstance(tag, dict) else None
        value = tag.get("Value", "") if isinstance(tag, dict) else None
        if not isinstance(key, str) or not key or len(key) > MAX_TAG_KEY:
            problems.append(
                DataProblem(owner, "tag ignored: its key is not one IAM allows", shown(key))
            )
            continue
        if not isinstance(value, str):
            problems.append(DataProblem(owner, "tag ignored: its value is not text", shown(key)))
            continue
        if len(kept) == MAX_TAGS:
            problems.append(DataProblem(owner, f"tags past the first {MAX_TAGS} ignored"))
            break
        if len(value) > MAX_TAG_VALUE:
            problems.append(
                DataProblem(owner, f"tag value cut to {MAX_TAG_VALUE} characters", shown(key))
            )
            value = value[:MAX_TAG_VALUE]
        kept[key] = value
    return kept


def link_tag(owner: str, user_tags: dict[str, str], problems: list[DataProblem]) -> str | None:
    """The Slack user id the link tag names, or None (no tag, or an unreadable one, reported)."""
    value = user_tags.get(TAG_SLACK_USER)
    if value is None:
        return None
    if not ids.is_user(value):
        problems.append(DataProblem(owner, "unreadable link tag ignored", shown(value)))
        return None
    return value
