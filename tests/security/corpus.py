"""Hostile strings: confusables, control characters, 10 kB, mrkdwn and link injection."""

from __future__ import annotations

import re

HOSTILE_TEXTS = [
    "",
    "<!channel> <!here> <!everyone>",
    "<https://evil.example/login|Click to approve>",
    "*bold* _it_ ~strike~ `code` ```block``` > quote",
    "\u0430lice",  # Cyrillic a
    "\uff41\uff4c\uff49\uff43\uff45",  # fullwidth alice
    "al\u200bice",  # zero-width space
    "\u202eecila",  # right-to-left override
    "alice\x00\x07\x1b[31m\x7f",
    "x" * 10_000,
    "'; DROP TABLE accounts; --",
    "../../etc/passwd",
    '"unterminated quote',
    "<@UADMIN|admin> <#C123|general> <!subteam^S1|@team>",
    "prod " + "a" * 70,
    "%s %d {0} {name} ${HOME}",
    "\n\n\r\t",
    "alice\nalice",
]

PINGS_AND_LINKS = ("<!channel>", "<!here>", "<!everyone>", "<https://evil.example")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
LEAKED_INTERNALS = ("Traceback", 'File "', "sqlalchemy", "botocore", "NoneType", "KeyError")


def problems_in_reply(reply: str, hostile: str) -> list[str]:
    """What is wrong with what a user was shown in answer to `hostile`."""
    found = [f"internal detail {word!r}" for word in LEAKED_INTERNALS if word in reply]
    found += [f"injected {mark!r}" for mark in PINGS_AND_LINKS if mark in hostile and mark in reply]
    if CONTROL.search(reply):
        found.append("control character")
    if len(reply) > 40_000:
        found.append(f"{len(reply)} characters")
    return found
