"""The one place where an exception becomes what a Slack user reads.

RoleUpError messages are written for users (see bot/services/errors.py) and are shown as they
are, escaped. Anything else is a bug or an outage: the user gets a short generic line with a
reference, and the log gets the traceback with every known secret value scrubbed from it.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from slack_bolt import BoltResponse

from bot.services.errors import Refused, RoleUpError
from bot.slack.acked_work import AckedPool, CutText, cut_off, not_carried_out
from bot.slack.blocks import message_modal
from bot.slack.buttons import in_home
from bot.slack.modal_reply import ModalReply, outcome
from bot.slack.mrkdwn import escape, plain, truncate_escaped

if TYPE_CHECKING:
    from slack_bolt import App, BoltRequest
    from slack_sdk import WebClient

logger = logging.getLogger("roleup.handlers")

GENERIC = (
    ":warning: Something went wrong on our side and nothing was changed by this step. "
    "Please try again; if it keeps happening, tell your RoleUp admin (reference `{ref}`)."
)
MAX_USER_MESSAGE = 600
REDACTED = "[redacted]"

T = TypeVar("T")


def user_message(exc: BaseException, *, ref: str | None = None) -> str:
    """A short mrkdwn line for the user: the domain message, or the generic one."""
    if isinstance(exc, Refused):
        from bot.slack.access import refusal

        exc = refusal(exc.decision, exc.action, exc.integration)
    mrkdwn = getattr(exc, "mrkdwn", None)
    if isinstance(exc, RoleUpError) and isinstance(mrkdwn, str):
        return ":no_entry: " + mrkdwn  # built from escaped parts by bot.slack.access
    if isinstance(exc, RoleUpError):
        return ":no_entry: " + truncate_escaped(escape(exc.user_message), MAX_USER_MESSAGE)
    return GENERIC.format(ref=ref or "-")


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def log_unexpected(exc: BaseException, what: str, *, secrets: Iterable[str | None] = ()) -> str:
    """Log an unexpected error with its traceback, secrets scrubbed; return its reference."""
    ref = uuid.uuid4().hex[:8]
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    logger.error("%s failed (ref %s):\n%s", what, ref, scrub(details, list(secrets)))
    return ref


def describe_failure(exc: BaseException, what: str, *, secrets: Iterable[str | None] = ()) -> str:
    """Log as needed and return the message for the user, for any exception."""
    if isinstance(exc, RoleUpError):
        logger.info("%s refused: %s", what, scrub(str(exc), list(secrets)))
        return user_message(exc)
    return user_message(exc, ref=log_unexpected(exc, what, secrets=secrets))


def field_errors(exc: RoleUpError, block_for_field: dict[str, str]) -> dict[str, str] | None:
    """Map a field error onto a modal's block ids for ack(response_action="errors")."""
    if exc.field is None or exc.field not in block_for_field:
        return None
    # Modal errors render as plain text: no escaping, just no control characters.
    return {block_for_field[exc.field]: plain(exc.user_message, 150)}


def run_reporting(
    reply: Callable[[str], Any],
    what: str,
    work: Callable[[], Any],
    *,
    secrets: Iterable[str | None] = (),
) -> bool:
    """Run work after the ack; any failure becomes one short reply. True if it succeeded."""
    secrets = list(secrets)
    try:
        work()
        return True
    except Exception as exc:  # the edge: every failure ends as a message, never a stack trace
        message = describe_failure(exc, what, secrets=secrets)
    try:
        reply(message)
    except Exception as exc:  # Slack unreachable: the log is all that is left
        logger.warning("could not tell the user that %s failed: %s", what, type(exc).__name__)
    return False


NO_POOL = (
    "the work after an ack needs a pool: bot.app.create_app sets core.after_ack and core.decisions"
)


def run_after_ack(
    pool: Executor | None,
    reply: Callable[[str], Any],
    what: str,
    work: Callable[[], Any],
    *,
    secrets: Iterable[str | None] = (),
    if_cut: CutText | None = None,
) -> None:
    """run_reporting, in `pool` (core.after_ack, or core.decisions for work that calls AWS).

    The served app runs each listener in the request's own thread and sends the ack when the
    listener returns (bot.app): whatever follows an ack goes here, never inline, or the ack
    waits for it. So there is no inline fallback for a missing pool (a wiring bug, raised).
    If the process stops before the work starts, the user is told it was not carried out; if
    it is still running when the stop's grace ends, `if_cut` (mrkdwn, escaped; by default
    bot.slack.acked_work.CUT_OFF, or what makes it when it is sent) is what they are told
    instead of its outcome."""
    if pool is None:
        raise RuntimeError(NO_POOL)
    told = not_carried_out(reply, what)
    run = partial(run_reporting, reply, what, work, secrets=secrets)
    try:
        if isinstance(pool, AckedPool):
            pool.submit_acked(run, if_dropped=told, if_cut=cut_off(reply, what, if_cut))
        else:
            pool.submit(run)
    except RuntimeError:  # the pool is stopping (so is the process): the work is not started
        told()


def run_in_modal(
    pool: Executor | None,
    ack: Callable[..., Any],
    modal: ModalReply,
    render: Callable[[str], dict[str, Any]],
    what: str,
    work: Callable[[Callable[[str], None]], Any],
    *,
    waiting: str = ":hourglass_flowing_sand: Asking…",
    secrets: Iterable[str | None] = (),
    if_cut: CutText | None = None,
) -> None:
    """A submission answered in its own modal: `waiting` at once (the ack), then `work` in
    `pool`, given `show` to put its outcome in the modal; a failure is shown there the same
    way, and so is a stop cutting it off (run_after_ack's `if_cut`). A modal closed meanwhile
    has it told in a DM instead (bot.slack.modal_reply)."""
    ack(response_action="update", view=render(waiting))

    def show(text: str) -> None:
        modal.show(render(text))

    run_after_ack(pool, show, what, lambda: work(show), secrets=secrets, if_cut=if_cut)


def button_reply(
    client: WebClient, body: dict[str, Any], respond: Callable[..., Any]
) -> Callable[[str], Any]:
    """Where the answer to a button goes: the App Home has no response_url, so there it is a
    DM; anywhere else an ephemeral reply."""
    if in_home(body):
        who = body["user"]["id"]
        return lambda text: client.chat_postMessage(channel=who, text=text)
    return ephemeral(respond)


def modal_button(
    pool: Executor | None, what: str, build: Callable[[dict[str, Any]], dict[str, Any]]
) -> Callable[..., None]:
    """The listener of a button that opens a modal built after the ack, in `pool`, from the
    click's body (the row its value names, re-read); a refusal goes where button_reply says."""

    def clicked(
        ack: Callable[..., Any],
        body: dict[str, Any],
        client: WebClient,
        respond: Callable[..., Any],
    ) -> None:
        ack()
        run_after_ack(
            pool,
            button_reply(client, body, respond),
            what,
            lambda: client.views_open(trigger_id=body["trigger_id"], view=build(body)),
        )

    return clicked


def ephemeral(respond: Callable[..., Any]) -> Callable[[str], Any]:
    """A reply function posting an ephemeral message through the command's response_url."""

    def reply(text: str) -> Any:
        return respond(text=text, response_type="ephemeral", replace_original=False)

    return reply


def ack_with_error(ack: Callable[..., Any], exc: BaseException, what: str) -> None:
    """Answer a command in its ack (the fastest way): ephemeral, one short line."""
    ack(text=describe_failure(exc, what), response_type="ephemeral")


def parsed_or_answered(
    ack: Callable[..., Any], command: dict[str, Any], parse: Callable[[str], T], what: str
) -> T | None:
    """A command's text read by `parse`; or None, once the ack has said why it cannot be."""
    try:
        return parse(command.get("text") or "")
    except Exception as exc:
        ack_with_error(ack, exc, what)
        return None


def keep_sent_acks(app: App) -> None:
    """Bolt's error handler for a listener that raised. Listeners run in the request's thread
    and the HTTP response is sent when they return (bot.app), so Bolt would turn a raise after
    the ack into a 500 and Slack would show the user an error for a command it had answered
    (and retry an event): an acked request keeps its ack. One that raised before its ack (a
    store down while a submission is checked) is answered with the generic line where Slack
    shows one (unacked_answer). Either way the traceback goes to the log, scrubbed, with a
    reference."""

    def listener_failed(error: Exception, request: BoltRequest) -> BoltResponse | None:
        ref = log_unexpected(error, "a Slack listener")
        sent = request.context.ack.response
        if sent is None:
            return unacked_answer(request.body, ref)
        logger.info("listener failed after its ack (ref %s): the ack stands", ref)
        return BoltResponse(status=sent.status, body=sent.body, headers=sent.headers)

    app.error(listener_failed)


def unacked_answer(body: dict[str, Any], ref: str) -> BoltResponse | None:
    """The answer to a command or a modal submission whose listener raised before its ack: the
    generic line (in the modal, or ephemeral), instead of Bolt's 500 that Slack shows as an
    error of its own. Anything else keeps the 500 (an event's retry may then succeed)."""
    text = GENERIC.format(ref=ref)
    if body.get("type") == "view_submission":
        view = outcome(message_modal("RoleUp", text))
        return BoltResponse(status=200, body={"response_action": "update", "view": view})
    if body.get("command"):
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": text})
    return None
