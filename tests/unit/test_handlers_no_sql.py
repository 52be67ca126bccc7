"""Handlers hold no SQL: they ack, parse, call a service (bot/services) and render.

Every module under handlers/ is parsed (never imported) and refused if it imports SQLAlchemy,
imports the store (storage.*) at all, even for type annotations under `if TYPE_CHECKING:`
(services hand back plain records, bot.services.records, not rows), opens a session
(`core.sessions()` / `core.sessions.begin()`), or runs a statement on one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HANDLERS = Path(__file__).resolve().parents[2] / "handlers"
SESSION_CALLS = {"execute", "scalar", "scalars", "expunge", "add", "flush", "commit"}


def _module(name: str | None) -> str:
    return name or ""


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _attribute_path(node: ast.expr) -> list[str]:
    """`core.sessions.begin` -> ["core", "sessions", "begin"]; a call in the chain ends it."""
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        names.append(node.id)
    return names[::-1]


def problems(source: str, filename: str = "<handler>") -> list[str]:
    """What makes `source` a handler with SQL in it, one line each (empty: none)."""
    tree = ast.parse(source, filename)
    found: list[str] = []
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [_module(node.module)]
        for module in modules:
            if _under(module, "sqlalchemy") or _under(module, "storage"):
                found.append(f"{where} imports {module}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            path = _attribute_path(node.func)
            if path[-1:] == ["sessions"] or path[-2:] == ["sessions", "begin"]:
                found.append(f"{where} opens a session ({'.'.join(path)}())")
            elif path[-1] in SESSION_CALLS and len(path) > 1 and "session" in path[-2].lower():
                found.append(f"{where} runs {'.'.join(path)}()")
    return found


def handler_modules() -> list[Path]:
    return sorted(HANDLERS.rglob("*.py"))


def test_there_are_handlers_to_check():
    assert len(handler_modules()) > 20


def test_no_handler_runs_sql_or_opens_a_session():
    found = [
        problem
        for path in handler_modules()
        for problem in problems(path.read_text(), str(path.relative_to(HANDLERS.parent)))
    ]
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "from sqlalchemy import select",
        "import sqlalchemy.exc",
        "from sqlalchemy.orm import Session",
        "from storage.models import Integration",
        "import storage.models",
        "from storage import models",
        "if TYPE_CHECKING:\n    from storage.models import Request",
        "import typing\nif typing.TYPE_CHECKING:\n    import storage.models",
        "with core.sessions() as session:\n    pass",
        "with self.core.sessions.begin() as session:\n    pass",
        "rows = session.scalars(query)",
        "db_session.execute(query)",
    ],
)
def test_each_kind_of_sql_is_caught(source):
    assert len(problems(source)) == 1


@pytest.mark.parametrize(
    "source",
    [
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from bot.services.records import IntegrationInfo",
        "from bot.services import listing\nrows = listing.integrations(core)",
        "client.views_update(view_id=view_id, view=view)",
        "app.use(make_retry_guard(core.sessions, deliveries))",  # wiring, not a query
    ],
)
def test_what_handlers_may_do_passes(source):
    assert problems(source) == []
