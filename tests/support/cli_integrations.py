"""An integration added as an operator adds it (`roleup integrations add`), and its secret."""

from __future__ import annotations

from bot.app import create_core
from bot.services import integrations
from bot.settings import Settings
from tests.support.cli import Result
from tests.support.config import TEST_KEY
from tests.support.secrets import rows_containing

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


KEY_ID = "AKIAIOSFODNN7EXAMPLE"


def add_key(cli, name: str = "prod", *extra: str, secret: str = SECRET) -> Result:
    return cli(
        "integrations", "add", name, "--access-key-id", KEY_ID, "--no-validate", *extra,
        stdin=secret + "\n",
    )  # fmt: skip


def stored(database_url: str, name: str):
    core = create_core(Settings(database_url=database_url, encryption_keys=(TEST_KEY,)))
    try:
        with core.sessions() as s:
            return integrations.get_integration(s, name)
    finally:
        core.engine.dispose()


def rows_containing_secret(database_url: str) -> list[str]:
    from storage.db import make_engine

    engine = make_engine(database_url)
    try:
        return rows_containing(engine, SECRET)
    finally:
        engine.dispose()
