"""Approval messages in Slack: Block Kit rendering of a request, and posting/updating them.

Everything is rendered from the Request row alone, so every copy of the message (a channel,
or one DM per approver) can be re-rendered after any change. User-supplied text is escaped
for mrkdwn, so no IAM username can ping a channel or fake a link.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services import account_expiry, approvals, grants, lifecycle, reasons
from bot.services.offboard_steps import PLAN_LABELS
from bot.services.people import People, everyone_in
from bot.services.policy import (
    EXPIRE_ACCOUNT,
    EXTEND_ACCOUNT,
    EXTEND_GRANT,
    INVITE_ONBOARD,
    OFFBOARD,
    ONBOARD,
    REMOVE_INTEGRATION,
    SET_GROUPS,
    Recipients,
)
from bot.slack import blocks as bk
from bot.slack import ids
from bot.slack.errors import run_in_modal
from bot.slack.modal_reply import ModalReply
from bot.slack.modals import message_view
from bot.slack.mrkdwn import date, escape, people
from bot.slack.mrkdwn import user as mention

if TYPE_CHECKING:
    from storage.models import Request

logger = logging.getLogger(__name__)

APPROVE_ACTION = "approval_approve"
DENY_ACTION = "approval_deny"
RETRY_ACTION = "approval_retry"
SECTION_LIMIT = 2900  # a margin below Block Kit's 3000 characters in a section's text

TITLES = {
    OFFBOARD: "Offboarding request",
    ONBOARD: "Onboarding request",
    INVITE_ONBOARD: "Onboarding request (public link)",
    SET_GROUPS: "Group change request",
    REMOVE_INTEGRATION: "Integration removal request",
    EXTEND_GRANT: "Access extension request",
    EXPIRE_ACCOUNT: "Account expiry",
    EXTEND_ACCOUNT: "Account extension request",
}
CHECKLISTED = (OFFBOARD, EXPIRE_ACCOUNT)
STEP_ICONS = {
    "done": ":white_check_mark:",
    "ok": ":white_check_mark:",
    "skipped": ":white_check_mark:",
    "running": ":hourglass_flowing_sand:",
    "started": ":hourglass_flowing_sand:",
    "failed": ":x:",
    "pending": ":white_large_square:",
}


class ApprovalPostFailed(Exception):
    """No copy of the approval message could be posted (the reason is Slack's error code)."""


# --- rendering -----------------------------------------------------------------------------
def render(row: Request) -> tuple[str, list[dict[str, Any]]]:
    """The message's fallback text and blocks for the request in its current state."""
    title = TITLES.get(row.kind, "Request")
    text = f"{title}: {escape(approvals.describe(row))}"
    blocks: list[dict[str, Any]] = [
        _section(f"*{title}* from {_requester(row)}\n{escape(approvals.describe(row))}")
    ]
    blocks += _details(row)
    if row.kind in CHECKLISTED and row.state in (
        approvals.RUNNING,
        approvals.DONE,
        approvals.FAILED,
    ):
        blocks += _checklist(row)
    tail = [_status(row)]
    buttons = _buttons(row)
    if buttons:
        tail.append(bk.actions(buttons, block_id="approval_actions"))
    # The status and the buttons always stay; the body is cut with a note of how much.
    return text, bk.fit_message(blocks, tail=tail, note=_more)


def _requester(row: Request) -> str:
    """A Slack mention, or RoleUp itself (an account's expiry asks for nobody)."""
    if ids.is_user(row.requester):
        return f"<@{escape(row.requester)}>"
    return "RoleUp" if row.requester == "roleup" else escape(row.requester)


def _more(cut: int) -> dict[str, Any]:
    return _section(f"_…and {cut} more (not shown)_")


def _section(text: str) -> dict[str, Any]:
    return bk.section(text, limit=SECTION_LIMIT)


def _details(row: Request) -> list[dict[str, Any]]:
    blocks = _change(row)
    justification = justification_text(row.reason, row.ticket)
    if justification:
        blocks.append(_section(justification))
    why = row.payload.get("why")
    if why and row.decided_by != approvals.AUTO_APPROVER:
        blocks.append(_section(f"*Why an approver:* {escape(why)}"))
    return blocks


def _change(row: Request) -> list[dict[str, Any]]:
    p = row.payload
    if row.kind == OFFBOARD:
        blocks = [_section(_plan_text(a)) for a in p.get("accounts", [])]
        untouched = [f"• {escape(key)}" for key in p.get("read_only") or []]
        if untouched:
            blocks.append(_section("*Not touched (read-only):*\n" + "\n".join(untouched)))
        if p.get("tag_links"):
            blocks.append(_section(TAG_LINKS_HEAD + "\n" + _keys(p["tag_links"])))
        blocks.append(
            _section("_Sessions of roles the user assumed earlier last until they expire._")
        )
        return blocks
    if row.kind in (ONBOARD, INVITE_ONBOARD):
        lines = [f"*Username:* {escape(p.get('username', ''))}"]
        lines.append(f"*Groups:* {_names(p.get('groups', []))}{_lasting(p, 'groups')}")
        lines.append(f"*Managed policies:* {_names(p.get('policies', []))}")
        if p.get("slack_user_id"):
            lines.append(f"*Slack user:* {mention(str(p['slack_user_id']))}")
        if p.get("invite_creator"):
            lines.append(f"*Invite created by:* {mention(str(p['invite_creator']))}")
        expires = account_expiry.load(p.get("account_expires"))
        if expires is not None:
            lines.append(f"*Account expires:* {account_expiry.shown(expires)} (00:00 UTC)")
        return [_section("\n".join(lines))]
    if row.kind == EXPIRE_ACCOUNT:
        expires = account_expiry.load(p.get("expires"))
        day = account_expiry.shown(expires) if expires else "?"
        return [
            _section(
                f":hourglass: The account's end date ({day}) has come: RoleUp offboards it "
                "without a new approval (the date was approved with the account)."
            ),
            _section(_plan_text(p)),
            _section("_Sessions of roles the user assumed earlier last until they expire._"),
        ]
    if row.kind == EXTEND_ACCOUNT:
        was = account_expiry.load(p.get("was"))
        new = account_expiry.load(p.get("expires"))
        return [
            _section(
                f"*User:* {escape(p.get('user_name', ''))}\n"
                f"*Account expires:* {account_expiry.shown(new) if new else '?'} (00:00 UTC)"
                + (f", instead of {account_expiry.shown(was)}" if was else "")
                + f"\n*Groups:* {_names(p.get('groups', []))}"
                f"\n*Managed policies:* {_names(p.get('policies', []))}"
            )
        ]
    if row.kind == SET_GROUPS:
        return [
            _section(
                f"*Add to:* {_names(p.get('added', []))}{_lasting(p, 'added')}\n"
                f"*Remove from:* {_names(p.get('removed', []))}"
            )
        ]
    if row.kind == EXTEND_GRANT:
        return [
            _section(
                f"*Group:* {escape(p.get('group', ''))}{_lasting(p, 'group')}\n"
                f"*User:* {escape(p.get('user_name', ''))}"
            )
        ]
    if row.kind == REMOVE_INTEGRATION:
        return [
            _section(
                f"Deletes integration *{escape(p.get('integration', ''))}* from RoleUp: all of its "
                "data in the store and its encrypted key. Nothing is changed in AWS."
            )
        ]
    return []


def _lasting(payload: dict[str, Any], groups_key: str) -> str:
    """` (for 4 hours)` when the groups are given for a while, else nothing."""
    term = grants.Term.load(payload.get("for_seconds"), payload.get("until"))
    if term.permanent or not payload.get(groups_key):
        return ""
    return f" ({escape(term.describe())})"


def justification_text(reason: str | None, ticket: str | None) -> str:
    """*Reason* and *Ticket* lines, escaped; a ticket is a link only when it is https://."""
    lines = []
    if reason:
        lines.append(f"*Reason:* {escape(reason)}")
    if ticket:
        shown = escape(ticket)
        lines.append(
            f"*Ticket:* <{shown}|{shown}>" if reasons.is_link(ticket) else f"*Ticket:* {shown}"
        )
    return "\n".join(lines)


def _names(items: list[str]) -> str:
    return ", ".join(escape(i) for i in items) or "none"


def _plan_text(account: dict[str, Any]) -> str:
    head = f"*{escape(approvals.account_key(account))}* — will remove:"
    lines = [f"• {escape(line)}" for line in plan_lines(account.get("plan") or {})]
    return "\n".join([head, *(lines or ["• the user itself (nothing else attached)"])])


def plan_lines(plan: dict[str, Any]) -> list[str]:
    """One plain line per thing the offboarding will remove, from the plan's to_dict()."""
    items = plan.get("items")
    if not isinstance(items, list):
        return [f"{key}: {value}" for key, value in plan.items() if value]
    return [_item_line(item) for item in items]


def _item_line(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    kind = str(item.get("kind", ""))
    label = PLAN_LABELS.get(kind, kind.replace("_", " ").capitalize())
    name = str(item.get("name") or "")
    detail = str(item.get("detail") or "")
    if kind == "login_profile":
        name = ""
    text = f"{label} {name}".strip()
    return f"{text} ({detail})" if detail else text


def _checklist(row: Request) -> list[dict[str, Any]]:
    by_account: dict[str, list[dict[str, Any]]] = {}
    for step in row.steps:
        by_account.setdefault(step.get("account", ""), []).append(step)
    blocks = []
    accounts = [row.payload] if row.kind == EXPIRE_ACCOUNT else row.payload.get("accounts", [])
    for account in accounts:
        key = approvals.account_key(account)
        blocks.append(_section(_checklist_text(key, by_account.get(key, []))))
    return blocks


def _checklist_text(key: str, steps: list[dict[str, Any]]) -> str:
    status = {s["step"]: s.get("status", "") for s in steps}
    names, labels = _step_names()
    names += [s["step"] for s in steps if s["step"] not in names and s["step"] != "finished"]
    lines = [f"*{escape(key)}*"]
    for name in names:
        icon = STEP_ICONS.get(status.get(name, "pending"), ":white_large_square:")
        lines.append(f"{icon} {escape(labels.get(name, name))}")
    return "\n".join(lines)


def _step_names() -> tuple[list[str], dict[str, str]]:
    """The offboarding steps in order, with their labels."""
    return list(lifecycle.OFFBOARD_STEPS), dict(lifecycle.STEP_LABELS)


def _status(row: Request) -> dict[str, Any]:
    by = _approved_by(row)
    outcome = escape(row.outcome or "")
    texts = {
        approvals.PENDING: _waiting(row) + _expiry(row),
        approvals.APPROVED: f"Approved by {by} · starting…",
        approvals.RUNNING: f"Approved by {by} · running…",
        approvals.DONE: f":white_check_mark: Done (approved by {by}). {outcome}",
        approvals.FAILED: f":x: Failed (approved by {by}): {outcome}",
        approvals.DENIED: f":no_entry_sign: Denied by {_decider(row)}.",
        approvals.EXPIRED: f":hourglass: {outcome or 'Expired.'}",
        approvals.CANCELLED: "Cancelled.",
    }
    if row.state == approvals.FAILED and not approvals.was_approved(row):
        text = f":x: Failed before it was approved: {outcome}"
    else:
        text = texts.get(row.state, row.state)
    return bk.context(text)


def _approved_by(row: Request) -> str:
    """Everyone whose approval counted, with the count (a two-person request), else who
    decided."""
    required = row.approvals_required or 1
    if required > 1 and row.approvals:
        counted = approvals.tally_of(row).counted
        return f"{people(list(counted))} · {len(counted)} of {required} approvals"
    return _decider(row)


def _decider(row: Request) -> str:
    if row.decided_by == approvals.AUTO_APPROVER and row.kind == EXPIRE_ACCOUNT:
        return "policy (the date was approved with the account)"
    if row.decided_by and row.decided_by != approvals.AUTO_APPROVER:
        return f"<@{escape(row.decided_by)}>"
    return "policy"


def _waiting(row: Request) -> str:
    """ "Waiting for an approver", or with a quorum "1 of 2 approvals: @april"."""
    required = row.approvals_required or 1
    if required <= 1:
        return "Waiting for an approver"
    counted = approvals.tally_of(row).counted
    if not counted:
        return f"Waiting for {required} different approvers"
    return f"{len(counted)} of {required} approvals: {people(list(counted))}"


def _expiry(row: Request) -> str:
    return "." if row.expires_at is None else f" · expires {date(row.expires_at)}."


def _buttons(row: Request) -> list[dict[str, Any]]:
    # The value is the request id and nothing else: the handler re-reads the row.
    if row.state == approvals.PENDING:
        return [
            bk.button("Approve", APPROVE_ACTION, row.id, style="primary"),
            bk.button("Deny", DENY_ACTION, row.id, style="danger"),
        ]
    if row.state == approvals.FAILED and approvals.was_approved(row):
        return [bk.button("Retry", RETRY_ACTION, row.id, style="primary")]
    return []


def requester_text(row: Request, event: str, detail: str = "") -> str:
    """What the requester is told when their request reaches `event`."""
    what = f"Your request {escape(approvals.describe(row))}"
    outcome = escape(row.outcome or "")
    by = f"<@{escape(row.decided_by)}>" if row.decided_by else "an approver"
    texts = {
        approvals.DONE: f":white_check_mark: {what} is done. {outcome}",
        approvals.FAILED: f":x: {what} failed: {outcome} An approver can Retry it.",
        approvals.DENIED: f":no_entry_sign: {what} was denied by {by}.",
        approvals.EXPIRED: f":hourglass: {what} expired: {outcome} Ask again if still needed.",
        "not_posted": (
            f":warning: {what} is saved (request `{row.id}`), but its approval message could "
            f"not be posted ({escape(detail)}): ask an admin to check the integration's "
            "approvals channel."
        ),
    }
    if event == approvals.FAILED and not approvals.was_approved(row):
        return f":x: {what} failed before it was approved: {outcome}"
    return texts.get(event, f"{what} is now {escape(row.state)}.")


TAG_LINKS_HEAD = (
    ":warning: *Linked to this person only by an IAM tag, not by RoleUp* (check before approving):"
)


def _keys(keys: list[str]) -> str:
    return "\n".join(f"• {escape(key)}" for key in keys)


def ask_in_modal(
    pool: Executor | None,
    ack: Callable[..., Any],
    client: WebClient,
    body: dict[str, Any],
    title: str,
    what: str,
    ask: Callable[[], Request],
) -> None:
    """A request filed from a modal's submission (`body`): the modal says it is asking (the
    ack), then (in `pool`) where the request waits, or why it could not be filed."""
    render = partial(message_view, title=title)

    def filed(show: Callable[[str], None]) -> None:
        show(submitted_text(ask()))

    run_in_modal(pool, ack, ModalReply.of(client, body), render, what, filed)


def submitted_text(row: Request) -> str:
    """The requester's answer to approvals.submit: where it waits, or that it is done."""
    text = _submitted_text(row)
    if row.kind == OFFBOARD and row.payload.get("tag_links"):
        text += "\n" + TAG_LINKS_HEAD + "\n" + _keys(row.payload["tag_links"])
    return text


def _submitted_text(row: Request) -> str:
    what = escape(approvals.describe(row))
    ref = f"`{escape(row.id)}`"
    if row.state == approvals.DONE:
        return f":white_check_mark: Done: {escape(row.outcome or what)}"
    if not approvals.was_posted(row):
        return (
            f":warning: Your request {what} is saved as {ref}, but its approval message could "
            "not be posted: ask an admin to check the integration's approvals channel."
        )
    channels = sorted({m["channel"] for m in row.payload.get("messages", [])})
    shown = [f"<#{c}>" for c in channels if ids.is_channel(c)]
    where = f"in {', '.join(shown)}" if shown else "from the approvers by DM"
    return f":hourglass_flowing_sand: Asked for approval {where}: {what} (request {ref})."


# --- posting -------------------------------------------------------------------------------
# What a Slack call raises once the client's retries are spent: Slack's error answer, or a
# connection that failed (OSError covers urllib's URLError and a dropped connection).
SLACK_FAILURES = (SlackApiError, OSError)


class SlackApprovalNotifier:
    """approvals.ApprovalNotifier over the Slack Web API (the client retries rate limits and
    server errors itself: bot.slack.client)."""

    def __init__(self, client: WebClient, people: People) -> None:
        self.client = client
        self.people = people  # user groups are expanded through the process's one directory

    def post_request(self, request: Request, to: Recipients) -> list[dict[str, str]]:
        text, blocks = render(request)
        posted: list[dict[str, str]] = []
        errors: list[str] = []
        for channel in self._destinations(to, errors):
            try:
                response = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks)
                posted.append({"channel": str(response["channel"]), "ts": str(response["ts"])})
            except SLACK_FAILURES as exc:
                errors.append(_error_code(exc))
                logger.warning("approval message to %s failed: %s", channel, _error_code(exc))
        if not posted:
            raise ApprovalPostFailed(", ".join(dict.fromkeys(errors)) or "nowhere to post")
        return posted

    def _destinations(self, to: Recipients, errors: list[str]) -> list[str]:
        destinations = list(to.channels)
        for user in self._people(to.people, errors):
            try:
                response = self.client.conversations_open(users=user)
                destinations.append(str(response["channel"]["id"]))
            except SLACK_FAILURES as exc:
                errors.append(_error_code(exc))
        return list(dict.fromkeys(destinations))

    def _people(self, entries: list[str], errors: list[str]) -> list[str]:
        return everyone_in(
            self.people, entries, SLACK_FAILURES, lambda _, exc: errors.append(_error_code(exc))
        )

    def refresh(self, request: Request) -> None:
        text, blocks = render(request)
        for message in messages_of(request):
            try:
                self.client.chat_update(
                    channel=message["channel"],
                    ts=message["ts"],
                    text=text,
                    blocks=blocks,
                )
            except SLACK_FAILURES as exc:
                logger.warning("updating request %s failed: %s", request.id, _error_code(exc))

    def tell_requester(self, request: Request, event: str, detail: str = "") -> None:
        if not ids.is_user(request.requester):
            logger.info("request %s: requester is not a Slack user; not told", request.id)
            return
        # Posting to a user id lands in the app's DM with them; the outcome may come hours
        # after the command, when its response_url has long expired.
        text = requester_text(request, event, detail)
        self.client.chat_postMessage(channel=request.requester, text=text)

    def remind(self, request: Request) -> None:
        text = "Reminder: this request is still waiting for an approver."
        for message in messages_of(request):
            try:
                self.client.chat_postMessage(
                    channel=message["channel"],
                    thread_ts=message["ts"],
                    text=text,
                )
            except SLACK_FAILURES as exc:
                logger.warning("reminder for %s failed: %s", request.id, _error_code(exc))


def messages_of(request: Request) -> list[dict[str, str]]:
    stored = request.payload.get("messages")
    if stored:
        return list(stored)
    if request.message_channel and request.message_ts:
        return [{"channel": request.message_channel, "ts": request.message_ts}]
    return []


def _error_code(exc: Exception) -> str:
    if not isinstance(exc, SlackApiError):  # the connection failed: no answer from Slack
        return f"connection_error ({type(exc).__name__})"
    try:
        return str(exc.response.get("error") or "unknown_error")
    except Exception:  # a non-JSON 5xx body
        return f"http_{getattr(exc.response, 'status_code', 'error')}"
