"""Block Kit builders that stay inside Slack's limits.

Limits (docs.slack.dev Block Kit reference): 50 blocks in a message, 100 in a modal; 3000
characters in a section's text, 2000 in a context element, 150 in a header or a button; 75
characters in an option's text and 150 in its value; 100 options in a select; 25 elements in
an actions block; 3000 characters of private_metadata; 24 characters in a modal title.
Callers pass raw values; the builders truncate so Slack never rejects a message for length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from bot.slack.mrkdwn import plain, truncate_escaped

MAX_MESSAGE_BLOCKS = 50
MAX_MODAL_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_CONTEXT_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_OPTIONS = 100
MAX_ACTIONS_ELEMENTS = 25
MAX_PRIVATE_METADATA = 3000
MAX_MODAL_TITLE = 24
MAX_BUTTON_VALUE = 2000
MAX_FALLBACK_TEXT = 3000
MAX_PLACEHOLDER_TEXT = 150

Block = dict[str, Any]


def text_obj(text: str, *, mrkdwn: bool = False, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    """A text object; mrkdwn text must already be escaped by the caller (see mrkdwn.escape)."""
    if mrkdwn:
        return {"type": "mrkdwn", "text": truncate_escaped(text, limit) or " "}
    return {"type": "plain_text", "text": plain(text, limit) or " ", "emoji": False}


def section(
    text: str,
    *,
    block_id: str | None = None,
    accessory: Block | None = None,
    limit: int = MAX_SECTION_TEXT,
) -> Block:
    block: Block = {"type": "section", "text": text_obj(text, mrkdwn=True, limit=limit)}
    if block_id:
        block["block_id"] = block_id
    if accessory:
        block["accessory"] = accessory
    return block


def header(text: str) -> Block:
    return {"type": "header", "text": text_obj(text, limit=MAX_HEADER_TEXT)}


def context(*texts: str) -> Block:
    elements = [text_obj(t, mrkdwn=True, limit=MAX_CONTEXT_TEXT) for t in texts[:10]]
    return {"type": "context", "elements": elements}


def divider() -> Block:
    return {"type": "divider"}


def button(
    text: str, action_id: str, value: str = "", *, style: str | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": text_obj(text, limit=MAX_BUTTON_TEXT),
        "action_id": action_id,
    }
    if value:
        if len(value) > MAX_BUTTON_VALUE:
            raise ValueError("a button value is limited to 2000 characters")
        element["value"] = value
    if style in ("primary", "danger"):
        element["style"] = style
    return element


def actions(elements: Sequence[dict[str, Any]], *, block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements[:MAX_ACTIONS_ELEMENTS])}
    if block_id:
        block["block_id"] = block_id
    return block


def option(text: str, value: str) -> dict[str, Any]:
    if len(value) > MAX_OPTION_VALUE:
        raise ValueError("an option value is limited to 150 characters")
    return {"text": text_obj(text, limit=MAX_OPTION_TEXT), "value": value}


def options(pairs: Iterable[tuple[str, str]], limit: int = MAX_OPTIONS) -> list[dict[str, Any]]:
    """At most `limit` (<= 100) options; values too long for Slack are left out, not cut."""
    out: list[dict[str, Any]] = []
    for text, value in pairs:
        if len(out) >= min(limit, MAX_OPTIONS):
            break
        if len(value) <= MAX_OPTION_VALUE:
            out.append(option(text, value))
    return out


def input_block(
    block_id: str,
    label: str,
    element: dict[str, Any],
    *,
    optional: bool = False,
    hint: str | None = None,
    dispatch_action: bool = False,
) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": text_obj(label, limit=2000),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = text_obj(hint, limit=2000)
    if dispatch_action:
        block["dispatch_action"] = True
    return block


def fit_message(
    blocks: list[Block],
    *,
    tail: Sequence[Block] = (),
    note: Callable[[int], Block] | None = None,
) -> list[Block]:
    """Keep a message within 50 blocks: the body is cut so `tail` always fits, and the last
    place goes to `note(how many were cut)` (by default "…more not shown")."""
    room = MAX_MESSAGE_BLOCKS - len(tail)
    if len(blocks) > room:
        cut = len(blocks) - room + 1
        last = note(cut) if note else context("_…more not shown_")
        blocks = [*blocks[: room - 1], last]
    return [*blocks, *tail]


def modal(
    *,
    callback_id: str | None,
    title: str,
    blocks: list[Block],
    submit: str | None = "Submit",
    close: str = "Cancel",
    private_metadata: str | None = "",
) -> dict[str, Any]:
    """A modal view; a view only shown (no callback id, no metadata) leaves those keys out."""
    if private_metadata is not None and len(private_metadata) > MAX_PRIVATE_METADATA:
        raise ValueError("private_metadata is limited to 3000 characters")
    view: dict[str, Any] = {
        "type": "modal",
        "title": text_obj(title, limit=MAX_MODAL_TITLE),
        "close": text_obj(close, limit=MAX_MODAL_TITLE),
        "blocks": blocks[:MAX_MODAL_BLOCKS],
    }
    if callback_id is not None:
        view["callback_id"] = callback_id
    if private_metadata is not None:
        view["private_metadata"] = private_metadata
    if submit:
        view["submit"] = text_obj(submit, limit=MAX_MODAL_TITLE)
    return view


class FormModal:
    """A form whose CALLBACK_ID and TITLE are on the class."""

    CALLBACK_ID: ClassVar[str]
    TITLE: ClassVar[str]

    @classmethod
    def form(cls, blocks: list[Block], submit: str, private_metadata: str) -> dict[str, Any]:
        return modal(
            callback_id=cls.CALLBACK_ID,
            title=cls.TITLE,
            blocks=blocks,
            submit=submit,
            private_metadata=private_metadata,
        )


class RowModal(FormModal):
    """A form about one row (a grant, an expiry, a review item), the row's id in
    private_metadata (read back with bot.slack.state.row_id)."""

    @classmethod
    def modal(cls, row_id: int, blocks: list[Block], submit: str) -> dict[str, Any]:
        return cls.form(blocks, submit, str(row_id))


def loading_modal(
    callback_id: str, title: str, *, private_metadata: str | None = ""
) -> dict[str, Any]:
    """What views.open shows at once, inside the trigger's 3 seconds, until views.update."""
    return modal(
        callback_id=callback_id,
        title=title,
        blocks=[section(":hourglass_flowing_sand: Loading…")],
        submit=None,
        close="Close",
        private_metadata=private_metadata,
    )


def message_modal(
    title: str,
    text: str,
    *,
    callback_id: str | None = None,
    private_metadata: str | None = None,
) -> dict[str, Any]:
    """A modal that only says something (mrkdwn `text`, escaped by the caller): Close only."""
    return modal(
        callback_id=callback_id,
        title=title,
        blocks=[section(text)],
        submit=None,
        close="Close",
        private_metadata=private_metadata,
    )


def multi_select(
    action_id: str, pairs: Iterable[tuple[str, str]], *, placeholder: str | None = None
) -> dict[str, Any]:
    """A multi_static_select of (text, value) pairs, within Slack's option limits."""
    element: dict[str, Any] = {
        "type": "multi_static_select",
        "action_id": action_id,
        "options": options(pairs),
    }
    if placeholder:
        element["placeholder"] = text_obj(placeholder, limit=MAX_PLACEHOLDER_TEXT)
    return element


def search_select(action_id: str, *, placeholder: str | None = None) -> dict[str, Any]:
    """A multi_external_select: the options come from the app's block_suggestion listener."""
    element: dict[str, Any] = {
        "type": "multi_external_select",
        "action_id": action_id,
        "min_query_length": 0,
    }
    if placeholder:
        element["placeholder"] = text_obj(placeholder, limit=MAX_PLACEHOLDER_TEXT)
    return element


def multi_choice(
    action_id: str, search_action_id: str, choices: Sequence[str], chosen: Sequence[str] = ()
) -> dict[str, Any]:
    """A multi-select of names: a static one when Slack can carry them all (100), else a
    search under `search_action_id`; `chosen` come preselected."""
    if len(choices) <= MAX_OPTIONS:
        element = multi_select(action_id, ((c, c) for c in choices))
    else:
        element = search_select(search_action_id)
    if chosen:
        element["initial_options"] = options((c, c) for c in chosen)
    return element


def text_input(
    action_id: str,
    *,
    max_length: int | None = None,
    multiline: bool = False,
    initial_value: str | None = "",
    placeholder: str | None = None,
) -> dict[str, Any]:
    """A plain_text_input; `initial_value` (None or empty: none) cut to `max_length`."""
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": action_id}
    if multiline:
        element["multiline"] = True
    if max_length is not None:
        element["max_length"] = max_length
        initial_value = (initial_value or "")[:max_length]
    if placeholder:
        element["placeholder"] = text_obj(placeholder, limit=MAX_PLACEHOLDER_TEXT)
    if initial_value:
        element["initial_value"] = initial_value
    return element


def static_select(
    action_id: str, pairs: Iterable[tuple[str, str]], *, initial: str | None = None
) -> dict[str, Any]:
    """A static_select of (text, value) pairs; the option whose value is `initial` (when there
    is one) shown picked."""
    choices = options(pairs)
    element: dict[str, Any] = {"type": "static_select", "action_id": action_id, "options": choices}
    picked = [o for o in choices if o["value"] == initial]
    if picked:
        element["initial_option"] = picked[0]
    return element


def checkboxes(
    action_id: str, pairs: Iterable[tuple[str, str]], *, ticked: Iterable[str] = ()
) -> dict[str, Any]:
    """Checkboxes of (text, value) pairs, those whose value is in `ticked` ticked."""
    choices = options(pairs)
    element: dict[str, Any] = {"type": "checkboxes", "action_id": action_id, "options": choices}
    on = set(ticked)
    initial = [o for o in choices if o["value"] in on]
    if initial:
        element["initial_options"] = initial
    return element


def users_select(action_id: str, *, initial: str | None = None) -> dict[str, Any]:
    """One Slack user; `initial` a user id."""
    element: dict[str, Any] = {"type": "users_select", "action_id": action_id}
    if initial:
        element["initial_user"] = initial
    return element


def multi_users_select(action_id: str, *, initial: Sequence[str] = ()) -> dict[str, Any]:
    """Slack users; `initial` user ids."""
    element: dict[str, Any] = {"type": "multi_users_select", "action_id": action_id}
    if initial:
        element["initial_users"] = list(initial)
    return element


def conversations_select(action_id: str, *, initial: str | None = None) -> dict[str, Any]:
    """One public or private channel (no DMs with bots); `initial` a channel id."""
    element: dict[str, Any] = {
        "type": "conversations_select",
        "action_id": action_id,
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if initial:
        element["initial_conversation"] = initial
    return element


def number_input(action_id: str, *, initial: int, least: int, most: int) -> dict[str, Any]:
    """A whole number from `least` to `most` (Slack sends numbers as strings)."""
    return {
        "type": "number_input",
        "action_id": action_id,
        "is_decimal_allowed": False,
        "initial_value": str(initial),
        "min_value": str(least),
        "max_value": str(most),
    }


def datepicker(action_id: str, *, initial: str | None = None) -> dict[str, Any]:
    """A date; `initial` as YYYY-MM-DD."""
    element: dict[str, Any] = {"type": "datepicker", "action_id": action_id}
    if initial:
        element["initial_date"] = initial
    return element


def datetimepicker(action_id: str, *, initial: int | None = None) -> dict[str, Any]:
    """A date and time; `initial` in seconds since the epoch."""
    element: dict[str, Any] = {"type": "datetimepicker", "action_id": action_id}
    if initial is not None:
        element["initial_date_time"] = initial
    return element


def home(blocks: list[Block]) -> dict[str, Any]:
    """The App Home tab's view."""
    return {"type": "home", "blocks": blocks}


def message_text(text: str) -> str:
    """The top-level `text` of a message (notifications and screen readers), within limits."""
    return truncate_escaped(text, MAX_FALLBACK_TEXT)
