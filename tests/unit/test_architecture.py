"""ARCHITECTURE.md stays true: every repository path it names exists, and the layering it
describes holds (the domain in bot/services never imports Slack, the web or the handlers)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The handlers by feature; while handlers/ still has its folders by listener kind
# (handlers/commands/, ...), these are where that code is going, not where it is.
FEATURES = ("onboard", "offboard", "groups", "accounts", "invite", "approvals", "grants")
FEATURES += ("reviews", "admin", "home")
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
    if any(ROOT.glob(path)):
        return True
    planned = re.fullmatch(r"handlers/([a-z]+)/", path)
    by_kind = (ROOT / "handlers/commands").is_dir()
    return bool(planned and planned.group(1) in FEATURES and by_kind)


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


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
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
    assert {m.split(".")[0] for m in imported_modules(ROOT / "bot/slack/ids.py")} <= {
        "__future__",
        "re",
    }
