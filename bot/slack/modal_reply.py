"""An outcome shown in the modal that asked for it, or, when that modal is gone, told in a DM.

A submission answered after its ack shows its outcome with views.update. By then the person may
have closed the waiting view (it has a Close button), or a retry's empty answer closed it
(bot/slack/retry_guard.py): Slack answers `not_found` and the outcome would reach nobody, so the
same text goes to the person who submitted the form, in a direct message, once. Only what the
modal would have shown that same person goes there (a generated password never does: it is shown
apart, ephemerally, by the onboarding itself). Any other failure to show it (a `hash_conflict`
means the view is still open, changed since) is logged, never raised: the work is done, and
reporting it as failed would be false.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.slack.ids import is_user
from bot.slack.mrkdwn import escape

if TYPE_CHECKING:
    from slack_sdk import WebClient

logger = logging.getLogger(__name__)

# What views.update answers for a view that no longer exists (closed, or never opened).
GONE = frozenset({"not_found"})
CLOSED = "*{title}* (closed before it could show you this):\n{text}"
# The private_metadata of a view an ack puts in its modal that is the outcome itself (a refusal),
# not a waiting view whose outcome is shown later: if that ack never reached Slack (a retry's
# claim won after the retry was answered empty, bot.slack.retry_guard), it is DMed instead.
OUTCOME = "roleup:outcome"


@dataclass(frozen=True)
class ModalReply:
    """Where a submitted modal's outcome goes: the modal `view_id`, else a DM to `user_id`."""

    client: WebClient
    user_id: str
    view_id: str
    title: str

    @classmethod
    def of(cls, client: WebClient, body: dict[str, Any]) -> ModalReply:
        """The submission `body`'s modal and the person who submitted it."""
        user = body.get("user")
        view = body.get("view")
        user_id = str(user.get("id", "")) if isinstance(user, dict) else ""
        return cls.submitted(client, user_id, view if isinstance(view, dict) else {})

    @classmethod
    def submitted(cls, client: WebClient, user_id: str, view: dict[str, Any]) -> ModalReply:
        """The modal `view` that `user_id` submitted."""
        title = view.get("title")
        text = title.get("text") if isinstance(title, dict) else None
        return cls(client, user_id, str(view.get("id", "")), text if isinstance(text, str) else "")

    def show(self, view: dict[str, Any], *, told: str | None = None) -> None:
        """Put `view` in the modal; if Slack says it is gone, DM `told` (mrkdwn, escaped), or
        by default what `view` says."""
        try:
            self.client.views_update(view_id=self.view_id, view=view)
            return
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "unknown_error")
        except OSError as exc:  # no answer: whether it was shown is unknown, so no DM either
            error = type(exc).__name__
        if error not in GONE:
            logger.warning("could not show an outcome in its modal: %s", error)
            return
        text = told if told is not None else said(view)
        if not text:  # nothing a person could read: a DM of only the form's name says nothing
            logger.warning("a closed modal's outcome had no text to send")
            return
        self.tell(text)

    def tell(self, text: str) -> None:
        """`text` to the person, in a DM that names the form; a failure is logged, once."""
        shown = CLOSED.format(title=escape(self.title or "RoleUp"), text=text)
        try:
            direct_message(self.client, self.user_id, shown)
        except (SlackApiError, OSError) as exc:
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else None
            logger.warning(
                "the modal was closed and the DM of its outcome failed too: %s",
                error or type(exc).__name__,
            )


def outcome(view: dict[str, Any]) -> dict[str, Any]:
    """`view`, marked as the outcome itself (see OUTCOME)."""
    return {**view, "private_metadata": OUTCOME}


def direct_message(client: WebClient, user_id: str, text: str) -> None:
    """Post `text` (mrkdwn, escaped) to `user_id`'s DM with the app; an id that is no Slack
    user's (a channel, a user group, a mention, a forged value) is DMed nothing, only logged."""
    if not is_user(user_id):
        logger.warning("no DM sent: the submitter is not a Slack user id")
        return
    channel = client.conversations_open(users=user_id)["channel"]["id"]
    client.chat_postMessage(channel=channel, text=text)


def said(view: dict[str, Any]) -> str:
    """The text a view shows, as mrkdwn: its sections and context lines (plain text escaped)."""
    lines: list[str] = []
    for block in view.get("blocks") or []:
        if block.get("type") == "section" and isinstance(block.get("text"), dict):
            lines.append(_mrkdwn(block["text"]))
        elif block.get("type") == "context":
            lines.extend(_mrkdwn(e) for e in block.get("elements") or [] if isinstance(e, dict))
    return "\n".join(line for line in lines if line)


def _mrkdwn(text: dict[str, Any]) -> str:
    value = str(text.get("text") or "")
    return value if text.get("type") == "mrkdwn" else escape(value)
