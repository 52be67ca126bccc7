"""The shapes of Slack ids: one pattern per kind, used by every parser, check and renderer.

A Slack id is a letter naming its kind followed by upper-case letters and digits: users `U…`
(or `W…` on Enterprise Grid), user groups `S…`, public channels `C…`, private ones `G…`. Slack
issues them 9 characters long in older workspaces and 11 now, and says they can grow, so the
upper bound is generous: 21 characters, enough for the growth and short enough that a hostile
value is refused rather than stored, shown or tagged. The lower bound is not Slack's 9: ids
shorter than that were accepted before (managers, approvers and links already stored), and
refusing them now would change what RoleUp does with them. A *bare* word is read as a user id
only when it is at least as long as the shortest id Slack issues, so a short IAM user name such
as `UBUNTU` is never taken for a person.

This module is a leaf (it imports only `re`), so the services may check an id's shape with it
without knowing anything else about Slack.
"""

from __future__ import annotations

import re

_TAIL = r"[A-Z0-9]{1,20}"  # 2 to 21 characters with the kind letter

USER = re.compile(rf"[UW]{_TAIL}")
USERGROUP = re.compile(rf"S{_TAIL}")
CHANNEL = re.compile(rf"[CG]{_TAIL}")
#: Who may be a manager, approver or reviewer: a user or a user group.
PRINCIPAL = re.compile(rf"[UWS]{_TAIL}")
#: A user id typed without `@`: at least Slack's shortest (9 characters).
BARE_USER = re.compile(r"[UW][A-Z0-9]{8,20}")
#: `<@U…>` or `<@U…|name>`, as Slack sends a mention with escaping on; group 1 is the id.
USER_MENTION = re.compile(rf"<@([UW]{_TAIL})(?:\|[^>]*)?>")


def is_user(value: object) -> bool:
    return isinstance(value, str) and USER.fullmatch(value) is not None


def is_usergroup(value: object) -> bool:
    return isinstance(value, str) and USERGROUP.fullmatch(value) is not None


def is_channel(value: object) -> bool:
    return isinstance(value, str) and CHANNEL.fullmatch(value) is not None
