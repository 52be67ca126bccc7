"""Block Kit builders that stay inside Slack's limits.

Limits (docs.slack.dev Block Kit reference): 50 blocks in a message, 100 in a modal; 3000
characters in a section's text, 2000 in a context element, 150 in a header or a button; 75
characters in an option's text and 150 in its value; 100 options in a select; 25 elements in
an actions block; 3000 characters of private_metadata; 24 characters in a modal title.
Callers pass raw values; the builders truncate so Slack never rejects a message for length.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

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

Block = dict[str, Any]


def text_obj(text: str, *, mrkdwn: bool = False, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    """A text object; mrkdwn text must already be escaped by the caller (see mrkdwn.escape)."""
    if mrkdwn:
        return {"type": "mrkdwn", "text": truncate_escaped(text, limit) or " "}
    return {"type": "plain_text", "text": plain(text, limit) or " ", "emoji": False}


def section(text: str, *, block_id: str | None = None, accessory: Block | None = None) -> Block:
    block: Block = {"type": "section", "text": text_obj(text, mrkdwn=True)}
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


def fit_message(blocks: list[Block], *, tail: Sequence[Block] = ()) -> list[Block]:
    """Keep a message within 50 blocks: the body is cut (with a note) so `tail` always fits."""
    room = MAX_MESSAGE_BLOCKS - len(tail)
    if len(blocks) > room:
        blocks = [*blocks[: room - 1], context("_…more not shown_")]
    return [*blocks, *tail]


def modal(
    *,
    callback_id: str,
    title: str,
    blocks: list[Block],
    submit: str | None = "Submit",
    close: str = "Cancel",
    private_metadata: str = "",
) -> dict[str, Any]:
    if len(private_metadata) > MAX_PRIVATE_METADATA:
        raise ValueError("private_metadata is limited to 3000 characters")
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback_id,
        "title": text_obj(title, limit=MAX_MODAL_TITLE),
        "close": text_obj(close, limit=MAX_MODAL_TITLE),
        "blocks": blocks[:MAX_MODAL_BLOCKS],
        "private_metadata": private_metadata,
    }
    if submit:
        view["submit"] = text_obj(submit, limit=MAX_MODAL_TITLE)
    return view


def loading_modal(callback_id: str, title: str) -> dict[str, Any]:
    """What views.open shows at once, inside the trigger's 3 seconds, until views.update."""
    return modal(
        callback_id=callback_id,
        title=title,
        blocks=[section(":hourglass_flowing_sand: Loading…")],
        submit=None,
        close="Close",
    )


def message_text(text: str) -> str:
    """The top-level `text` of a message (notifications and screen readers), within limits."""
    return truncate_escaped(text, MAX_FALLBACK_TEXT)
