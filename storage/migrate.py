"""Apply the Alembic migrations programmatically (`roleup db upgrade`, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from storage.db import StoreUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


class SchemaNotReady(StoreUnavailable):
    """The database answers but its schema is missing or older than this code."""


def latest_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revisions(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def check_schema(engine: Engine) -> None:
    """Raise SchemaNotReady naming the fix unless the database is at the latest migration."""
    current = current_revisions(engine)
    if current != latest_revisions():
        state = "has no RoleUp schema" if not current else "has an older RoleUp schema"
        raise SchemaNotReady(
            f"the database {engine.url.render_as_string(hide_password=True)} {state}: "
            "run `roleup db upgrade`"
        )
