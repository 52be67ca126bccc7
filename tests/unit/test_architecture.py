"""ARCHITECTURE.md stays true: every repository path it names exists, and the layering it
describes holds (the domain in bot/services never imports Slack, the web or the handlers when it
runs; imports for type hints only do not count)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.source import parsed

ROOT = Path(__file__).resolve().parents[2]
# What bot/services and storage never import: Slack, the web framework, the surfaces. The one
# exception is bot.slack.ids, a leaf of id patterns that imports nothing else (checked below).
SURFACES = re.compile(
    r"(slack_bolt|slack_sdk|flask|werkzeug|gunicorn|handlers|bot\.(slack(?!\.ids(\.|$))|web|app|cli"
    r"|scheduler|server|wsgi|invite_page|demo))(\.|$)"
)


def named_paths(text: str) -> list[str]:
    """Backticked words that are repository paths: a folder or file, not a route or code."""
    paths = []
    for word in re.findall(r"`([^`\s]+)`", text):
        if word.startswith("/") or "<" in word or "(" in word:
            continue  # a route, a placeholder or a call
        if "/" in word or re.search(r"\.(py|md|sh|yml|toml)$", word):
            paths.append(word)
    return paths


def exists(path: str) -> bool:
    return any(ROOT.glob(path))


def test_every_path_architecture_md_names_exists() -> None:
    paths = named_paths((ROOT / "ARCHITECTURE.md").read_text())
    assert "bot/services/approvals.py" in paths and "handlers/offboard/" in paths
    assert [p for p in paths if not exists(p)] == []


def test_the_path_check_can_tell_a_missing_path() -> None:
    assert named_paths("`bot/nowhere.py`, `/slack/events`, `handlers/<feature>/`, `Core`") == [
        "bot/nowhere.py"
    ]
    assert not exists("bot/nowhere.py")
    assert not exists("handlers/nowhere/")


def test_readme_links_architecture_md() -> None:
    assert "(ARCHITECTURE.md)" in (ROOT / "README.md").read_text()


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (imports for type hints only)."""
    nodes: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))
    return nodes


def imported_modules(path: Path) -> set[str]:
    """What the module imports when it runs (type-checking imports left out)."""
    modules: set[str] = set()
    for node in runtime_nodes(parsed(path)):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from bot.slack import ids` imports bot.slack.ids: name what was imported.
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


def test_the_domain_and_the_store_never_import_slack_the_web_or_the_handlers() -> None:
    files = sorted((ROOT / "bot/services").rglob("*.py")) + sorted((ROOT / "storage").glob("*.py"))
    assert len(files) > 30
    found = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in files
        for module in imported_modules(path)
        if SURFACES.match(module)
    }
    assert found == set()
    assert SURFACES.match("handlers.approvals") and SURFACES.match("bot.slack.blocks")
    assert not SURFACES.match("bot.services.audit") and not SURFACES.match("bot.settings")
    assert not SURFACES.match("bot.slack.ids.PRINCIPAL") and SURFACES.match("bot.slack.idsx")
    hinted = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import flask\n")
    assert all(not isinstance(node, ast.Import) for node in runtime_nodes(hinted))
    assert {m.split(".")[0] for m in imported_modules(ROOT / "bot/slack/ids.py")} <= {
        "__future__",
        "re",
    }
