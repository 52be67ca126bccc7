"""The outline every slash-command listener follows: read the text (or say in the ack why it
cannot be read), ack, then do the work after the ack in a pool, any failure ending as one
ephemeral reply (bot.slack.errors). A command that only reads the store (a listing) is answered
in its ack instead, when its answer is ready in time (`read_only_command`).

Listeners run in the request's own thread and the ack is sent when they return (bot.app), so
neither outline does any work of its own after the ack."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Executor, Future, wait
from typing import Any, TypeVar

from slack_bolt import Ack, App, BoltResponse, Respond
from slack_sdk import WebClient

from bot.slack.acked_work import READ_CUT_OFF, AckedPool, cut_off
from bot.slack.errors import (
    NO_POOL,
    ack_with_error,
    ephemeral,
    log_unexpected,
    parsed_or_answered,
    run_after_ack,
    run_reporting,
)
from bot.slack.mrkdwn import escape
from bot.slack.retry_guard import ReadOnlyRequests
from storage.db import read_again_if_ended

T = TypeVar("T")
E = TypeVar("E", bound=Exception)

# (ack, client, command, parsed) -> True when the command was answered in its ack
Answer = Callable[[Ack, WebClient, dict[str, Any], T], bool]
# (client, command, parsed, respond): the work after the ack
Work = Callable[[WebClient, dict[str, Any], T, Respond], Any]


class MessageJson(str):
    """A message (text, blocks) as its JSON text, an object: one made once and kept
    (handlers.accounts.messages) is acked as it is, neither decoded nor encoded again."""


# (command, parsed) -> the message (text, blocks): a read-only command's answer
Render = Callable[[dict[str, Any], T], dict[str, Any] | MessageJson]

# Slack waits 3 s for an ack. A read-only answer not ready within this many seconds (a slow or
# locked store, a full pool) is acked with WORKING and posted to response_url once it is.
ANSWER_WITHIN = 1.5
WORKING = ":hourglass_flowing_sand: Working on it…"


def command_listener(
    app: App,
    name: str,
    parse: Callable[[str], T],
    what: str | Callable[[T], str],
    work: Work[T],
    *,
    pool: Executor | None,
    parse_what: str | None = None,
    answer: Answer[T] | None = None,
) -> None:
    """Register the listener of `name`. `what` names the work in logs and failure replies
    (`parse_what` the reading of the text, when it differs); `answer` may answer in the ack
    itself (help, opening a modal, which needs the trigger at once); `pool` runs the work
    once the listener has returned with its ack (bot.slack.errors.run_after_ack)."""
    if pool is None:
        raise RuntimeError(NO_POOL)  # at registration, not at each command's ack

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


def read_only_command(
    app: App,
    name: str,
    parse: Callable[[str], T],
    what: str,
    render: Render[T],
    *,
    pool: Executor | None,
    parse_what: str | None = None,
    read_only: ReadOnlyRequests | None = None,
) -> None:
    """Register the listener of `name`, a command that only reads: its answer (`render`'s
    message, or the line a failure ends as) is the ack itself, with no post to response_url
    and nothing left to do after the ack. It is added to `read_only` (the app's
    DeliveryLog.read_only), so it costs no delivery key: a Slack retry of it is answered again
    (bot.slack.retry_guard). `render` runs in `pool` (the after-ack pool) while
    the request's thread waits ANSWER_WITHIN for it (the one hop: a stalled store must not
    hold the ack past Slack's 3 seconds); later than that, the ack says WORKING and the answer
    is posted to response_url when it is ready, once."""
    if pool is None:
        raise RuntimeError(NO_POOL)

    def listener(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        parsed = parsed_or_answered(ack, command, parse, parse_what or what)
        if parsed is None:
            return
        answer = started(pool, lambda: render(command, parsed))
        try:
            message = answer.result(timeout=ANSWER_WITHIN)
        except TimeoutError:
            if answer.done():  # the render's own TimeoutError (a socket's), not the wait's
                ack_with_error(ack, answer.exception() or TimeoutError(), what)
                return
            ack(text=WORKING, response_type="ephemeral")
            # A stop cutting it off says so, not WORKING forever.
            told = cut_off(ephemeral(respond), what, READ_CUT_OFF.format(what=escape(what)))
            # Called once, in the pool's thread when it finishes, or here if it just did.
            _when_done(pool, answer, told, lambda done: _post(done, respond, what))
            return
        except Exception as exc:
            ack_with_error(ack, exc, what)
            return
        if isinstance(message, MessageJson):
            spliced = _ephemeral(message)
            if spliced is not None:
                # As ack(**message, response_type="ephemeral") would answer, without the
                # message's decoding and encoding (a third of a kept listing's own CPU).
                ack.response = BoltResponse(
                    status=200,
                    body=spliced,
                    headers={"content-type": "application/json;charset=utf-8"},
                )
                return
            # Not one a splice keeps valid and ephemeral: decoded, and ephemeral whatever it
            # said (its own response type never shows a listing to the channel).
            ack(**{**_as_dict(message), "response_type": "ephemeral"})
            return
        ack(**message, response_type="ephemeral")

    app.command(name)(listener)
    if read_only is not None:
        read_only.commands.add(name)


def options_within(
    pool: Executor | None, what: str, find: Callable[[dict[str, Any]], list[dict[str, Any]]]
) -> Callable[..., None]:
    """The listener of an options request (an external select's search), whose answer is its
    ack. `find(body)` asks the store and, for who may search, Slack (users.info): it runs in
    `pool` while the request's thread waits ANSWER_WITHIN for it, so a slow Slack or store
    never holds the ack past Slack's 3 seconds. Late or failed, the answer is no options (an
    options request has nowhere to post a later answer; the next keystroke asks again). It
    only reads, so on a pooled connection the server had ended unseen it is read again on a
    new one (storage.db.read_again_if_ended)."""
    if pool is None:
        raise RuntimeError(NO_POOL)

    def listener(ack: Ack, body: dict[str, Any]) -> None:
        found = started(pool, lambda: read_again_if_ended(lambda: find(body)))
        try:
            ack(options=found.result(timeout=ANSWER_WITHIN))
        except TimeoutError:
            if found.done():  # find's own TimeoutError (a socket's), not the wait's
                log_unexpected(found.exception() or TimeoutError(), what)
            ack(options=[])
        except Exception as exc:
            log_unexpected(exc, what)
            ack(options=[])

    return listener


def started(pool: Executor | None, work: Callable[[], T]) -> Future[T]:
    """`work` running in `pool`, for a listener to wait ANSWER_WITHIN on before its ack."""
    if pool is not None:
        try:
            return pool.submit(work)
        except RuntimeError:  # the pool is shut down (the process is stopping): run it here
            pass
    done: Future[T] = Future()
    try:
        done.set_result(work())
    except Exception as exc:
        done.set_exception(exc)
    return done


def _post(answer: Future[Any], respond: Respond, what: str) -> None:
    """A late answer, to response_url; a failure (of the render or the post) as one line."""
    run_reporting(
        ephemeral(respond),
        what,
        # Ephemeral whatever the message said (its own response type too, as in the ack).
        lambda: respond(**{**_as_dict(answer.result()), "response_type": "ephemeral"}),
    )


def _ephemeral(message: MessageJson) -> str | None:
    """The message's JSON text with "response_type": "ephemeral" spliced in as its first key;
    None unless that is valid and the only response type: an object written as json.dumps
    writes one, starting with its first key (not `{}`, nor after a space), and without a
    response type of its own (a key twice is read as the JSON reader chooses)."""
    if not message.startswith('{"') or '"response_type"' in message:
        return None
    return '{"response_type": "ephemeral", ' + message[1:]


def _as_dict(message: dict[str, Any] | MessageJson) -> dict[str, Any]:
    if isinstance(message, MessageJson):
        decoded: dict[str, Any] = json.loads(message)
        return decoded
    return message


def _label(what: str | Callable[[T], str], parsed: T | None) -> str:
    if isinstance(what, str):
        return what
    assert parsed is not None  # a label built from the parse needs `parse_what` before it
    return what(parsed)


def checked_within(
    pool: Executor | None,
    check: Callable[[], T],
    later: Callable[[Future[T]], Any],
    *,
    if_cut: Callable[[], Any] | None = None,
) -> Future[T] | None:
    """A submission's checks that read the store, run in `pool` and awaited ANSWER_WITHIN: done
    in time, their Future, for the ack to carry the outcome (field errors); late, None, and
    `later` gets the Future when it is done (in the pool's thread, or here if it just did, so
    `later` only hands work on: bot.slack.errors.run_after_ack). Late, `if_cut` tells the
    person if the process stops with the checks still running (bot.slack.acked_work)."""
    checking = started(pool, check)
    if wait([checking], timeout=ANSWER_WITHIN).done:
        return checking
    _when_done(pool, checking, if_cut, later)
    return None


def _when_done(
    pool: Executor | None,
    late: Future[T],
    if_cut: Callable[[], Any] | None,
    then: Callable[[Future[T]], Any],
) -> None:
    """`then(late)` once `late` is done, and `if_cut` told if a stop cuts it off; a stop that
    cancels it before it starts tells `if_cut` too (in stop_pools, within its bound) and
    `then` is not called: it would report the cancel as a failure, from the stopping thread."""
    if if_cut is not None and isinstance(pool, AckedPool) and pool.tell_if_cut(late, if_cut):
        late.add_done_callback(lambda done: None if done.cancelled() else then(done))
    else:
        late.add_done_callback(then)


def refused_in_ack(
    checks: Future[Any] | None,
    ack: Ack,
    refused: type[E],
    errors: Callable[[E], dict[str, str]],
) -> bool:
    """True when checks done in time (checked_within) refused the form with `refused`: the ack
    then carries its field errors and the modal stays open."""
    if checks is None:
        return False
    try:
        checks.result()
    except refused as exc:
        ack(response_action="errors", errors=errors(exc))
        return True
    return False
