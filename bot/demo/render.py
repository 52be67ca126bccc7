"""Block Kit as a person would read it in a terminal: messages and modals become indented text,
mrkdwn mentions and links become names, and every button or menu gets a number to pick it by.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

INDENT = "  "
SUMMARY_OPTIONS = 8  # a field's summary names this many options; the prompt lists them all
# <@U1|name>, <#C1|name>, <!here>, <!subteam^S1|@team>, <!date^ts^fmt|fallback>, <url|text>
ANGLE = re.compile(r"<([^<>\n]*)>")
SHORTCODE = re.compile(r":([a-z0-9_+-]+):")
# The emoji RoleUp's messages use, as terminals show them; others stay as :name:.
EMOJI = {
    "white_check_mark": "✅",
    "heavy_check_mark": "✔",
    "x": "❌",
    "hourglass_flowing_sand": "⏳",
    "hourglass": "⌛",
    "white_large_square": "⬜",
    "warning": "⚠️",
    "no_entry": "⛔",
    "lock": "🔒",
    "key": "🔑",
    "wave": "👋",
    "arrows_counterclockwise": "🔄",
    "bust_in_silhouette": "👤",
    "busts_in_silhouette": "👥",
    "hammer_and_wrench": "🛠",
    "stopwatch": "⏱",
    "tada": "🎉",
    "email": "📧",
    "envelope": "✉️",
}


class Directory(Protocol):
    """Names for the ids Slack text carries."""

    def user_label(self, user_id: str) -> str: ...

    def channel_label(self, channel_id: str) -> str: ...


@dataclass
class Control:
    """A button, menu or overflow a person can pick, by number when `number` is set."""

    block_id: str
    element: dict[str, Any]
    label: str
    number: int | None = None


@dataclass
class Numbering:
    """Hands out pick numbers for one screenful; `controls[n - first]` is number n."""

    first: int = 1
    controls: list[Control] = field(default_factory=list)

    def add(self, control: Control) -> Control:
        control.number = self.first + len(self.controls)
        self.controls.append(control)
        return control

    def get(self, number: int) -> Control | None:
        index = number - self.first
        return self.controls[index] if 0 <= index < len(self.controls) else None


def emoji(text: str) -> str:
    return SHORTCODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mrkdwn(text: str, directory: Directory) -> str:
    """Slack's control sequences resolved to readable text; `&lt;` and friends unescaped last,
    so an escaped `<!channel>` typed by someone shows as the harmless text it is."""

    def control(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + (unescape(label) if label else directory.user_label(target[1:]))
        if target.startswith("#"):
            return "#" + (unescape(label) if label else directory.channel_label(target[1:]))
        if target.startswith("!date^"):
            return unescape(label) if label else _date(target)
        if target.startswith("!subteam^"):
            return unescape(label) if label else "@" + target.split("^", 1)[1]
        if target.startswith("!"):
            return "@" + target[1:]
        link = unescape(target)
        return f"{unescape(label)} ({link})" if label else link

    parts: list[str] = []
    last = 0
    for match in ANGLE.finditer(text):
        parts.append(unescape(text[last : match.start()]))
        parts.append(control(match))
        last = match.end()
    parts.append(unescape(text[last:]))
    return emoji("".join(parts))


def _date(target: str) -> str:
    pieces = target.split("^")
    try:
        when = datetime.fromtimestamp(int(pieces[1]), tz=UTC)
    except (IndexError, ValueError):
        return target
    return when.strftime("%Y-%m-%d %H:%M UTC")


def text_of(obj: Any, directory: Directory) -> str:
    """A text object (plain_text or mrkdwn), or a bare string, as readable text."""
    if obj is None:
        return ""
    if isinstance(obj, str):
        return obj
    text = str(obj.get("text", ""))
    return mrkdwn(text, directory) if obj.get("type") == "mrkdwn" else emoji(text)


def indented(text: str, prefix: str = INDENT) -> list[str]:
    return [prefix + line if line else prefix.rstrip() for line in text.split("\n")]


def option_label(option: dict[str, Any], directory: Directory) -> str:
    label = text_of(option.get("text"), directory)
    description = text_of(option.get("description"), directory)
    return f"{label} ({description})" if description else label


def options_of(element: dict[str, Any]) -> list[dict[str, Any]]:
    """Static options, flattening option groups."""
    if element.get("options"):
        return list(element["options"])
    flat: list[dict[str, Any]] = []
    for group in element.get("option_groups") or []:
        flat.extend(group.get("options") or [])
    return flat


def control_label(element: dict[str, Any], directory: Directory) -> str:
    kind = element.get("type")
    if kind == "button":
        label = text_of(element.get("text"), directory)
        if element.get("url"):
            label += f" -> {element['url']}"
        return label
    if kind == "overflow":
        return "More: " + ", ".join(option_label(o, directory) for o in options_of(element))
    placeholder = text_of(element.get("placeholder"), directory)
    return f"{placeholder or 'Choose'} ({str(kind).replace('_', ' ')})"


def _controls_line(
    block_id: str, elements: list[dict[str, Any]], directory: Directory, numbering: Numbering | None
) -> str:
    shown: list[str] = []
    for element in elements:
        label = control_label(element, directory)
        control = Control(block_id, element, label)
        if numbering is not None:
            numbering.add(control)
            shown.append(f"[{control.number}] {label}")
        else:
            shown.append(f"[{label}]")
    return INDENT + "   ".join(shown)


def render_blocks(
    blocks: list[dict[str, Any]], directory: Directory, numbering: Numbering | None = None
) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        lines.extend(render_block(block, directory, numbering))
    return lines


def render_block(
    block: dict[str, Any], directory: Directory, numbering: Numbering | None = None
) -> list[str]:
    kind = block.get("type")
    block_id = str(block.get("block_id", ""))
    if kind == "header":
        title = text_of(block.get("text"), directory)
        return [INDENT + title, INDENT + "=" * min(len(title), 60)]
    if kind == "divider":
        return [INDENT + "-" * 40]
    if kind == "section":
        return _section(block, directory, numbering)
    if kind == "context":
        parts = [
            text_of(e, directory) if e.get("type") != "image" else f"({e.get('alt_text', 'image')})"
            for e in block.get("elements") or []
        ]
        return indented("  ".join(p for p in parts if p), INDENT + "> ")
    if kind == "actions":
        return [_controls_line(block_id, list(block.get("elements") or []), directory, numbering)]
    if kind == "image":
        title = text_of(block.get("title"), directory)
        return [INDENT + f"(image: {title or block.get('alt_text', '')})"]
    if kind == "input":
        return [INDENT + input_summary(block, directory)]
    if kind == "rich_text":
        return indented(_rich_text(block), INDENT)
    return [INDENT + f"(a {kind} block)"]


def _section(block: dict[str, Any], directory: Directory, numbering: Numbering | None) -> list[str]:
    lines: list[str] = []
    if block.get("text"):
        lines.extend(indented(text_of(block["text"], directory)))
    for item in block.get("fields") or []:
        lines.extend(indented(text_of(item, directory).replace("\n", " "), INDENT + "| "))
    accessory = block.get("accessory")
    if accessory:
        if accessory.get("type") == "image":
            lines.append(INDENT + f"(image: {accessory.get('alt_text', '')})")
        else:
            block_id = str(block.get("block_id", ""))
            lines.append(INDENT + _controls_line(block_id, [accessory], directory, numbering))
    return lines


def _rich_text(block: dict[str, Any]) -> str:
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "text":
                out.append(str(node.get("text", "")))
            elif node.get("type") == "link":
                out.append(str(node.get("text") or node.get("url", "")))
            elif node.get("type") == "user":
                out.append("@" + str(node.get("user_id", "")))
            for child in node.get("elements") or []:
                walk(child)
            if node.get("type") in ("rich_text_section", "rich_text_preformatted"):
                out.append("\n")

    walk(block)
    return "".join(out).strip("\n")


def input_summary(block: dict[str, Any], directory: Directory) -> str:
    """`Label (optional): what kind of field` for an input block."""
    label = text_of(block.get("label"), directory)
    element = block.get("element") or {}
    optional = " (optional)" if block.get("optional") else ""
    kind = str(element.get("type", "")).replace("_", " ")
    options = options_of(element)
    if options:
        shown = ", ".join(option_label(o, directory) for o in options[:SUMMARY_OPTIONS])
        more = len(options) - SUMMARY_OPTIONS
        kind += ": " + shown + (f", ... ({more} more)" if more > 0 else "")
    hint = text_of(block.get("hint"), directory)
    return f"{label}{optional}: [{kind}]" + (f"  ({hint})" if hint else "")


def render_message(
    message: dict[str, Any], directory: Directory, numbering: Numbering | None = None
) -> list[str]:
    """A chat message: its blocks (or its text when it has none) and its attachments."""
    blocks = list(message.get("blocks") or [])
    lines = render_blocks(blocks, directory, numbering) if blocks else []
    if not blocks and message.get("text"):
        lines = indented(mrkdwn(str(message["text"]), directory))
    for attachment in message.get("attachments") or []:
        lines.extend(render_blocks(list(attachment.get("blocks") or []), directory, numbering))
        if attachment.get("text") and not attachment.get("blocks"):
            lines.extend(indented(mrkdwn(str(attachment["text"]), directory)))
    return lines or [INDENT + "(an empty message)"]


def render_view(
    view: dict[str, Any], directory: Directory, numbering: Numbering | None = None
) -> list[str]:
    """A modal: its title box, then its blocks (inputs summarised, buttons numbered)."""
    title = text_of(view.get("title"), directory) or "Modal"
    lines = ["+" + "-" * (len(title) + 2) + "+", f"| {title} |", "+" + "-" * (len(title) + 2) + "+"]
    lines.extend(render_blocks(list(view.get("blocks") or []), directory, numbering))
    buttons = [text_of(view.get(k), directory) for k in ("submit", "close") if view.get(k)]
    if buttons:
        lines.append(INDENT + "(modal buttons: " + " / ".join(buttons) + ")")
    return lines
