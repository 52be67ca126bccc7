"""The outline every slash-command listener follows: read the text (or say in the ack why it
cannot be read), ack, then do the work after the ack, any failure ending as one ephemeral
reply (bot.slack.errors)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.slack.errors import ephemeral, parsed_or_answered, run_after_ack

T = TypeVar("T")

# (ack, client, command, parsed) -> True when the command was answered in its ack
Answer = Callable[[Ack, WebClient, dict[str, Any], T], bool]
# (client, command, parsed, respond): the work after the ack
Work = Callable[[WebClient, dict[str, Any], T, Respond], Any]


def command_listener(
    app: App,
    name: str,
    parse: Callable[[str], T],
    what: str | Callable[[T], str],
    work: Work[T],
    *,
    parse_what: str | None = None,
    answer: Answer[T] | None = None,
    pool: Executor | None = None,
) -> None:
    """Register the listener of `name`. `what` names the work in logs and failure replies
    (`parse_what` the reading of the text, when it differs); `answer` may answer in the ack
    itself (help, opening a modal, which needs the trigger at once); `pool` runs the work
    apart from the listener threads (bot.slack.errors.run_after_ack)."""

    # Bolt passes a listener's arguments by their names: these four, spelled out.
    def listener(ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond) -> None:
        parsed = parsed_or_answered(ack, command, parse, parse_what or _label(what, None))
        if parsed is None:
            return
        if answer is not None and answer(ack, client, command, parsed):
            return
        ack()
        run_after_ack(
            pool,
            ephemeral(respond),
            _label(what, parsed),
            lambda: work(client, command, parsed, respond),
        )

    app.command(name)(listener)


def _label(what: str | Callable[[T], str], parsed: T | None) -> str:
    if isinstance(what, str):
        return what
    assert parsed is not None  # a label built from the parse needs `parse_what` before it
    return what(parsed)
