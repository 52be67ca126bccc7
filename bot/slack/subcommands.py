"""`/roleup` subcommands served by the feature they belong to.

Break-glass (handlers/grants) and access reviews (handlers/reviews) register their own `/roleup`
listener, matched on the parsed subcommand, before handlers/admin's: that one answers every
other subcommand and every usage error, so a feature never imports another to be reached."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from slack_bolt import Ack, Respond

from bot.slack.args import RoleupCommand, parse_roleup
from bot.slack.errors import ephemeral, run_after_ack

Reply = Callable[[str], Any]


def roleup_matcher(*names: str) -> Callable[[dict[str, Any]], bool]:
    """A Bolt matcher: the `/roleup` text parses as one of `names`. Text that does not parse is
    left to the `/roleup` router, which answers the usage error; so is a parser that fails
    outright (a matcher that raises is an HTTP 500 and no answer at all), which the router
    answers with a reference to its log."""

    def matches(body: dict[str, Any]) -> bool:
        try:
            return parse_roleup(str(body.get("text") or "")).name in names
        except Exception:
            return False

    return matches


def run_roleup(
    pool: Executor | None,
    ack: Ack,
    command: dict[str, Any],
    respond: Respond,
    work: Callable[[RoleupCommand, Reply], None],
) -> None:
    """As the router runs a subcommand: ack at once, then the work in `pool`, any failure one
    reply."""
    parsed = parse_roleup(command.get("text") or "")
    ack()
    reply = ephemeral(respond)
    run_after_ack(pool, reply, f"/roleup {parsed.name}", lambda: work(parsed, reply))
