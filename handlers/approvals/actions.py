"""The Approve, Deny and Retry buttons of approval messages.

The button's value is only the request id: the row is re-read, the clicker's rights are checked
against the integration(s) the request belongs to, and the state moves by a conditional UPDATE,
so a double click, a Slack retry or two approvers at once run the request once.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.services import approvals
from bot.services.container import Core
from bot.services.errors import RoleUpError, StoreError
from bot.slack.approval_messages import APPROVE_ACTION, DENY_ACTION, RETRY_ACTION
from bot.slack.errors import ephemeral, run_after_ack

logger = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
GONE = "That request no longer exists."
# A stop cut the click's work off mid-way (bot.slack.acked_work): what the store's recovery of a
# request left running does next (bot.services.approvals.recover_running), never more.
CUT_OFF = (
    ":warning: RoleUp restarted while carrying out the {what} click, before it could tell you "
    "how it ended. The approval message shows where the request stands: one left running is "
    "taken over a few minutes later (an offboarding resumes where it stopped; any other change "
    "is marked failed, as it may be partly made, to be Retried)."
)
# The click's request reached an end before the stop cut the click off (while its approval
# message was being updated, or its requester told): the recovery takes over only requests left
# running, so the message may keep showing it running; the approver is told how it ended.
ENDED_CUT_OFF = (
    ":warning: RoleUp restarted just after carrying out the {what} click: the request {ended}, "
    "though its approval message may not show it yet."
)
ENDED = {approvals.DONE: "was done", approvals.FAILED: "failed", approvals.DENIED: "was denied"}
# How long the stop's message waits to read where the request stands (the store may be what
# held the click): past it, CUT_OFF. Within bot.slack.acked_work.TELL_SECONDS.
STATE_WITHIN = 1.0
STORE_DOWN = (
    "RoleUp could not reach its database while handling your click. Please try again in a "
    "minute: a decision that was already saved is kept and runs once."
)


def register(app: App, core: Core) -> None:
    app.action(APPROVE_ACTION)(_clicked(core, "approve"))
    app.action(DENY_ACTION)(_clicked(core, "deny"))
    app.action(RETRY_ACTION)(_clicked(core, "retry"))


def _clicked(core: Core, what: str) -> Callable[..., None]:
    # Acked first, then the work on the decision pool (core.decisions): a click's AWS calls can
    # hang for minutes, and the listener runs in the request's thread, whose return sends the
    # ack (bot.app). Not a Bolt lazy listener: that deep-copies the whole request and parses
    # its body again for every click.
    def run(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        user = str(body.get("user", {}).get("id", ""))
        actions = body.get("actions") or [{}]
        request_id = str(actions[0].get("value", ""))
        work = partial(_decide, core, what, request_id, user, respond)
        run_after_ack(
            core.decisions,
            ephemeral(respond),
            f"the {what} click",
            work,
            if_cut=partial(_cut_off_text, core, what, request_id),
        )

    run.__name__ = f"approval_{what}"
    return run


def _cut_off_text(core: Core, what: str, request_id: str) -> str:
    """What the clicker is told when a stop cuts the click off: made as it is sent, from where
    the request stands then (read within STATE_WITHIN, in a thread the exit may leave)."""
    state: list[str] = []

    def read() -> None:
        try:
            state.append(approvals.load(core, request_id).state)
        except Exception:  # gone, or the store failing: the words that hold whatever happened
            logger.warning("could not read request %s for the stop's message", request_id)

    if REQUEST_ID.match(request_id):
        reading = threading.Thread(target=read, name="roleup-stop-read", daemon=True)
        reading.start()
        reading.join(STATE_WITHIN)
    # A Retry starts from FAILED: seen still failed, it may not have started again.
    ended = (
        ENDED.get(state[0]) if state and (what, state[0]) != ("retry", approvals.FAILED) else None
    )
    if ended is None:
        return CUT_OFF.format(what=what)
    return ENDED_CUT_OFF.format(what=what, ended=ended)


def _decide(core: Core, what: str, request_id: str, user: str, respond: Respond) -> None:
    try:
        if not REQUEST_ID.match(request_id):
            raise approvals.RequestNotFound(GONE)
        if what == "retry":
            approvals.retry(core, request_id, approver=user)
        else:
            approvals.decide(core, request_id, approver=user, approve=what == "approve")
    except RoleUpError as exc:
        _tell_clicker(respond, exc.user_message)
    except StoreError:
        # Every state change is one committed UPDATE, so a lost connection leaves the
        # request as it was (or decided and picked up by recover_running): say so.
        logger.warning("store error handling a %s click", what, exc_info=True)
        _tell_clicker(respond, STORE_DOWN)


def _tell_clicker(respond: Respond, text: str) -> None:
    try:
        respond(text=text, response_type="ephemeral", replace_original=False)
    except Exception:  # the answer to one click is not worth a stack trace in the log
        logger.warning("could not tell the clicker: %s", text)
