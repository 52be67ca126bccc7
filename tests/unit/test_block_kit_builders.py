"""Every Block Kit block, element, text object and view the app sends is built by
bot/slack/blocks.py, the one place that keeps them within Slack's limits: no other module of
bot/ or handlers/ writes one as a dict literal. bot/demo is left out: it imitates Slack's
client (it reads views and writes payloads), it does not build what the app sends."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from tests.support.source import nodes

ROOT = Path(__file__).resolve().parents[2]
BUILDERS = ROOT / "bot" / "slack" / "blocks.py"
SKIPPED = ROOT / "bot" / "demo"

BLOCKS = {"actions", "context", "divider", "file", "header", "image", "input", "rich_text"}
BLOCKS |= {"section", "video", "markdown"}
ELEMENTS = {"button", "checkboxes", "datepicker", "datetimepicker", "email_text_input"}
ELEMENTS |= {"number_input", "overflow", "plain_text_input", "radio_buttons", "timepicker"}
ELEMENTS |= {"url_text_input", "file_input", "rich_text_input", "workflow_button"}
ELEMENTS |= {
    f"{many}{kind}_select"
    for many in ("", "multi_")
    for kind in ("static", "external", "users", "conversations", "channels")
}
TEXTS = {"plain_text", "mrkdwn"}
VIEWS = {"modal", "home"}
BLOCK_KIT = BLOCKS | ELEMENTS | TEXTS | VIEWS


def block_kit_literals(walked: Iterable[ast.AST]) -> list[tuple[int, str]]:
    """(line, type) of each dict literal or dict(...) call whose "type" is a Block Kit type,
    among a module's nodes."""
    found = []
    for node in walked:
        pairs: list[tuple[ast.expr | None, ast.expr]] = []
        if isinstance(node, ast.Dict):
            pairs = list(zip(node.keys, node.values, strict=True))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict":
            pairs = [(ast.Constant(k.arg), k.value) for k in node.keywords if k.arg]
        for key, value in pairs:
            named_type = isinstance(key, ast.Constant) and key.value == "type"
            if named_type and isinstance(value, ast.Constant) and value.value in BLOCK_KIT:
                found.append((node.lineno, value.value))
    return found


def test_the_check_finds_a_hand_built_element() -> None:
    source = (
        'element = {"type": "users_select", "action_id": "a"}\n'
        'view = dict(type="modal", blocks=[])\n'
        'event = {"type": "message", "text": "not Block Kit"}\n'
    )
    assert block_kit_literals(ast.walk(ast.parse(source))) == [(1, "users_select"), (2, "modal")]


def test_only_the_builders_write_block_kit_dicts() -> None:
    found = []
    for folder in ("bot", "handlers"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == BUILDERS or SKIPPED in path.parents:
                continue
            for line, kind in block_kit_literals(nodes(path)):
                found.append(f"{path.relative_to(ROOT)}:{line} {kind}")
    assert found == [], "build these with bot/slack/blocks.py:\n" + "\n".join(found)


def test_the_builders_module_writes_them() -> None:
    """The check reads the real builders: they write the elements the others now call."""
    kinds = {kind for _, kind in block_kit_literals(nodes(BUILDERS))}
    assert {"checkboxes", "users_select", "datepicker", "number_input", "home"} <= kinds
