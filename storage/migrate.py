"""Apply the Alembic migrations programmatically (`roleup db upgrade`, tests), and tell whether
a database is at the latest one without importing Alembic: every CLI command checks that first,
and importing Alembic would cost each a few hundred milliseconds (bench/sync.py)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

from storage.db import StoreUnavailable, safe_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"  # Alembic's default; storage/migrations/env.py keeps it


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


class SchemaNotReady(StoreUnavailable):
    """The database answers but its schema is missing or older than this code."""


@functools.cache
def latest_revisions() -> frozenset[str]:
    """The heads: the revisions of storage/migrations/versions that no other revision follows.
    Read once a process: the files do not change while it runs (each `roleup` checks them)."""
    revisions: set[str] = set()
    followed: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        values = _module_constants(path)
        revision, down = values.get("revision"), values.get("down_revision")
        if isinstance(revision, str):
            revisions.add(revision)
        if isinstance(down, str):
            followed.add(down)
        elif isinstance(down, tuple | list):  # a merge revision follows several
            followed.update(str(d) for d in down)
    return frozenset(revisions - followed)


def _module_constants(path: Path) -> dict[str, object]:
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        target: ast.expr | None = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and value is not None:
            try:
                found[target.id] = ast.literal_eval(value)
            except ValueError:
                continue
    return found


def current_revisions(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return set()
        rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
        return {str(version) for (version,) in rows}


def check_schema(engine: Engine) -> None:
    """Raise SchemaNotReady naming the fix unless the database is at the latest migration."""
    current = current_revisions(engine)
    if current != latest_revisions():
        state = "has no RoleUp schema" if not current else "has an older RoleUp schema"
        raise SchemaNotReady(
            f"the database {safe_url(engine.url)} {state}: run `roleup db upgrade`"
        )
