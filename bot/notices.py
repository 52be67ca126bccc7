"""What the scheduled jobs tell Slack: health alerts and drift digests, posted to the
integration's approvals channel. Text from AWS or the store is mrkdwn-escaped before it goes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError

from bot.services import account_expiry
from bot.services.account_ending import Expired
from bot.services.account_ending import Reminder as AccountReminder
from bot.services.breakglass import Announcement, release
from bot.services.container import Core
from bot.services.expiry import Ended, Reminder
from bot.services.grants import GrantRow, shown
from bot.services.health import HealthChange
from bot.slack import ids
from bot.slack.blocks import MAX_SECTION_TEXT, actions, button, context, section
from bot.slack.mrkdwn import code, escape, user

logger = logging.getLogger(__name__)


def post(core: Core, channel: str | None, text: str, blocks: list[dict[str, Any]]) -> bool:
    """Post to `channel`; a Slack failure is logged, not raised (the job's work is done)."""
    client = core.slack
    if client is None or not channel:
        return False
    try:
        client.chat_postMessage(channel=channel, text=text, blocks=blocks)
    except SlackApiError as err:
        logger.warning("could not post to %s: %s", channel, err.response.get("error"))
        return False
    except OSError as err:  # no answer (the client's retries are spent, or it may not retry)
        logger.warning("could not post to %s: connection error (%s)", channel, type(err).__name__)
        return False
    return True


def health_alert(change: HealthChange) -> tuple[str, list[dict[str, Any]]]:
    word = "is failing" if change.after.status == "failing" else "needs attention"
    text = f"AWS integration {change.integration} {word}: {change.after.detail}"
    body = (
        f":warning: *AWS integration {escape(change.integration)} {word}*\n"
        f"{escape(change.after.detail)}"
    )
    return text, [section(body)]


def post_health_alert(core: Core, change: HealthChange) -> bool:
    text, blocks = health_alert(change)
    return post(core, change.approvals_channel, text, blocks)


# --- drift digests --------------------------------------------------------------------------
MAX_DIGEST_LINES = 40  # one readable message; the audit log keeps the whole list


class Drift(Protocol):
    """One account's change, as bot.services.sync.AccountDrift reports it."""

    @property
    def user_name(self) -> str: ...
    @property
    def kind(self) -> str: ...  # added | removed | changed
    @property
    def groups_added(self) -> list[str]: ...
    @property
    def groups_removed(self) -> list[str]: ...
    @property
    def policies_added(self) -> list[str]: ...
    @property
    def policies_removed(self) -> list[str]: ...


def drift_line(change: Drift) -> str:
    name = code(change.user_name)
    if change.kind == "added":
        return f"• {name}: account created"
    if change.kind == "removed":
        return f"• {name}: account deleted"
    parts = []
    for label, added, removed in (
        ("groups", change.groups_added, change.groups_removed),
        ("policies", change.policies_added, change.policies_removed),
    ):
        moves = [f"+{escape(x)}" for x in added] + [f"-{escape(x)}" for x in removed]
        if moves:
            parts.append(f"{label} {' '.join(moves)}")
    return f"• {name}: " + ("; ".join(parts) or "changed")


class Problem(Protocol):
    """A value from IAM not stored as read, as bot.services.iam_data.DataProblem reports it."""

    @property
    def subject(self) -> str: ...
    @property
    def what(self) -> str: ...
    @property
    def value(self) -> str: ...


def problem_line(problem: Problem) -> str:
    """IAM's own text (the subject, the value) only ever as escaped code spans."""
    value = f" {code(problem.value, 80)}" if problem.value else ""
    return f"• {code(problem.subject, 80)}: {escape(problem.what)}{value}"


def drift_digest(
    integration: str, changes: Sequence[Drift], problems: Sequence[Problem] = ()
) -> tuple[str, list[dict[str, Any]]]:
    """One message listing every change made outside RoleUp since the last sync, then the
    values from IAM this sync could not take as read (unreadable or conflicting link tags,
    entities skipped, tags cut)."""
    count = len(changes)
    noun = "change" if count == 1 else "changes"
    text = f"{count} {noun} made outside RoleUp in AWS integration {integration}"
    lines = _capped([drift_line(change) for change in changes], count)
    head = f":mag: *{count} {noun} made outside RoleUp* in AWS integration *{escape(integration)}*"
    blocks = [section(head)] if changes else []
    blocks += [section(chunk) for chunk in _chunks(lines)]
    if problems:
        many = len(problems)
        values = "value" if many == 1 else "values"
        if not changes:
            text = f"{many} {values} from IAM not stored as read in AWS integration {integration}"
        blocks.append(
            section(
                f":warning: *{many} {values} from IAM not stored as read* in AWS integration "
                f"*{escape(integration)}*"
            )
        )
        found = _capped([problem_line(p) for p in problems], many)
        blocks += [section(chunk) for chunk in _chunks(found)]
    return text, blocks


def _capped(lines: list[str], count: int) -> list[str]:
    if count <= MAX_DIGEST_LINES:
        return lines
    return [
        *lines[:MAX_DIGEST_LINES],
        f"…and {count - MAX_DIGEST_LINES} more (all in `/roleup audit`).",
    ]


def _chunks(lines: list[str], limit: int = MAX_SECTION_TEXT - 100) -> list[str]:
    """Section texts under Slack's 3000-character limit."""
    chunks: list[str] = []
    current = ""
    for line in lines:
        if current and len(current) + len(line) + 1 > limit:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line[:limit]
    if current:
        chunks.append(current)
    return chunks


# --- time-bound grants --------------------------------------------------------------------------
def _grant_words(grant: GrantRow) -> str:
    return (
        f"*{escape(grant.group)}* for IAM user *{escape(grant.user_name)}* "
        f"in *{escape(grant.integration)}*"
    )


def tell_grant_ended(core: Core, ended: Ended) -> int:
    """DM the person (when linked) and the requester that a grant ended; how many were told."""
    grant = ended.grant
    reason = escape(grant.end_reason or "ended")
    text = f"Access to {grant.group} for {grant.user_name} in {grant.integration} has ended."
    blocks = [section(f":hourglass: Access to {_grant_words(grant)} has ended ({reason}).")]
    people = [p for p in dict.fromkeys((grant.slack_user_id, grant.requester)) if p]
    told = [p for p in people if ids.is_user(p) and post(core, p, text, blocks)]
    return len(told)


def post_grant_failure(core: Core, ended: Ended) -> bool:
    """Tell the approvals channel a grant could not be ended after repeated attempts."""
    grant = ended.grant
    text = f"RoleUp could not end the grant of {grant.group} to {grant.user_name}."
    body = (
        f":warning: RoleUp could not end the grant of {_grant_words(grant)} after "
        f"{ended.failures} attempts: {escape(ended.error or 'unknown error')}. "
        "It keeps trying; the membership stays until it succeeds."
    )
    return post(core, ended.approvals_channel, text, [section(body[:MAX_SECTION_TEXT])])


GRANT_EXTEND_ACTION = "grant_extend"
GRANT_END_ACTION = "grant_end"
BEFORE_WORDS = {"1h": "in about an hour", "24h": "in about a day"}


def grant_buttons(grant_id: int) -> list[dict[str, Any]]:
    """*Extend* and *End now* for one grant (the value is its id; the click is checked)."""
    return [
        button("Extend", GRANT_EXTEND_ACTION, str(grant_id)),
        button("End now", GRANT_END_ACTION, str(grant_id), style="danger"),
    ]


def grant_reminder(reminder: Reminder) -> tuple[str, list[dict[str, Any]]]:
    grant = reminder.grant
    end = shown(grant.ends_at)
    text = f"Access to {grant.group} for {grant.user_name} in {grant.integration} ends at {end}."
    body = (
        f":hourglass_flowing_sand: Access to {_grant_words(grant)} ends at *{end}* "
        f"({BEFORE_WORDS.get(reminder.before, 'soon')})."
    )
    return text, [section(body), actions(grant_buttons(grant.id), block_id=f"grant_{grant.id}")]


def remind_grant(core: Core, reminder: Reminder) -> int:
    """DM the person (when linked) and the requester before a grant ends; how many heard."""
    text, blocks = grant_reminder(reminder)
    grant = reminder.grant
    people = [p for p in dict.fromkeys((grant.slack_user_id, grant.requester)) if p]
    told = [p for p in people if ids.is_user(p) and post(core, p, text, blocks)]
    return len(told)


# --- break-glass --------------------------------------------------------------------------------
BREAKGLASS_REVOKE_ACTION = "breakglass_revoke"
BREAKGLASS_ACK_ACTION = "breakglass_ack"


def breakglass_buttons(grant_id: int) -> list[dict[str, Any]]:
    """*Revoke now* and *Acknowledge* (the value is the grant id; the click is checked)."""
    return [
        button("Revoke now", BREAKGLASS_REVOKE_ACTION, str(grant_id), style="danger"),
        button("Acknowledge", BREAKGLASS_ACK_ACTION, str(grant_id), style="primary"),
    ]


def breakglass_message(
    grant: GrantRow, *, again: bool = False, revoked_by: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The approvers' message: who took which group, until when and why (the reason is the
    person's own words: escaped, so `<!channel>` in it pings nobody)."""
    holder = user(grant.requester)
    lead = ":rotating_light: *Break-glass*" + (" (still not acknowledged)" if again else "")
    body = (
        f"{lead}: {holder} gave themselves {_grant_words(grant)} until "
        f"*{shown(grant.ends_at)}*, with no approver.\n"
        f"*Reason:* {escape(grant.reason or '')}"
    )
    text = (
        f"Break-glass: {escape(grant.group)} for {escape(grant.user_name)} in "
        f"{escape(grant.integration)} until {shown(grant.ends_at)}"
    )
    blocks = [section(body)]
    status = []
    if grant.acknowledged_by:
        status.append(f":white_check_mark: Acknowledged by {user(grant.acknowledged_by)}.")
    if revoked_by:
        status.append(f":no_entry: Revoked by {user(revoked_by)}: the membership is removed.")
    elif grant.state != "active":
        status.append(f":hourglass: Ended ({escape(grant.end_reason or 'ended')}).")
    if status:
        blocks.append(context(" ".join(status)))
    if grant.state == "active" and not revoked_by:
        buttons = breakglass_buttons(grant.id)
        if grant.acknowledged_by:
            buttons = buttons[:1]  # reviewed: only Revoke is left to do
        blocks.append(actions(buttons, block_id=f"breakglass_{grant.id}"))
    return text, blocks


def announce_breakglass(core: Core, announcement: Announcement) -> int:
    """Post the announcement to the approvals channel (else each approver by DM); how many
    posts went out. When none did, the claim is handed back for the next grants job."""
    text, blocks = breakglass_message(announcement.grant, again=announcement.again)
    to = announcement.to
    targets = [*to.channels, *(p for p in to.people if ids.is_user(p))]
    posted = sum(1 for target in targets if post(core, target, text, blocks))
    if not posted:
        release(core, announcement)
    return posted


# --- expiring accounts --------------------------------------------------------------------------
ACCOUNT_EXTEND_ACTION = "account_extend"
ACCOUNT_BEFORE_WORDS = {"7d": "in 7 days", "1d": "tomorrow"}


def _account_words(user_name: str, integration: str) -> str:
    return f"IAM user *{escape(user_name)}* in *{escape(integration)}*"


def account_reminder(reminder: AccountReminder) -> tuple[str, list[dict[str, Any]]]:
    expiry = reminder.expiry
    day = account_expiry.shown(expiry.expires_at)
    text = f"The account {expiry.user_name} in {expiry.integration} expires on {day}."
    which = _account_words(expiry.user_name, expiry.integration)
    body = (
        f":hourglass_flowing_sand: The account {which}"
        f" expires on *{day}* at 00:00 UTC ({ACCOUNT_BEFORE_WORDS.get(reminder.before, 'soon')}):"
        " RoleUp offboards it then. *Extend* asks for a later date (under the same rules as "
        "onboarding it)."
    )
    buttons = [button("Extend", ACCOUNT_EXTEND_ACTION, str(expiry.id))]
    return text, [section(body), actions(buttons, block_id=f"account_{expiry.id}")]


def remind_account(core: Core, reminder: AccountReminder) -> bool:
    """DM the requester of an expiring account; True if they heard."""
    text, blocks = account_reminder(reminder)
    requester = reminder.expiry.requester
    return ids.is_user(requester) and post(core, requester, text, blocks)


def tell_account_expired(core: Core, expired: Expired) -> int:
    """DM the requester and the person (when linked) that the account was offboarded at its
    date (the approvals channel has the checklist); how many were told."""
    expiry = expired.expiry
    day = account_expiry.shown(expiry.expires_at)
    text = f"The account {expiry.user_name} in {expiry.integration} expired and was offboarded."
    blocks = [
        section(
            f":hourglass: The account {_account_words(expiry.user_name, expiry.integration)} "
            f"reached its end date ({day}) and was offboarded."
        )
    ]
    people = [p for p in dict.fromkeys((expiry.requester, expiry.slack_user_id)) if p]
    told = [p for p in people if ids.is_user(p) and post(core, p, text, blocks)]
    return len(told)


def post_account_expiry_failure(core: Core, expired: Expired) -> bool:
    """Tell the approvals channel an expired account could not be offboarded after repeated
    attempts."""
    expiry = expired.expiry
    text = f"RoleUp could not offboard the expired account {expiry.user_name}."
    body = (
        f":warning: RoleUp could not offboard the expired account "
        f"{_account_words(expiry.user_name, expiry.integration)} after {expired.failures} "
        f"attempts: {escape(expired.error or 'unknown error')}. It keeps trying; the account "
        "stays until it succeeds."
    )
    return post(core, expired.approvals_channel, text, [section(body[:MAX_SECTION_TEXT])])
