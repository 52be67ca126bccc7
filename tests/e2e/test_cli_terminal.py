"""`roleup integrations add|remove` on a real pseudo-terminal: a separate `roleup` process whose
prompts are answered as a person would (the in-process runs are in tests/services)."""

from __future__ import annotations

import os
import sys

import pytest

from tests.support.cli_integrations import KEY_ID, SECRET, stored
from tests.support.config import TEST_KEY
from tests.support.terminal import run_in_terminal


@pytest.fixture
def terminal_env(database_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ROLEUP_"))}
    env.update(DATABASE_URL=database_url, ROLEUP_ENCRYPTION_KEYS=TEST_KEY, PYTHONUNBUFFERED="1")
    return env


def roleup_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot", *args]


def test_on_a_terminal_the_secret_is_asked_for_without_echo(terminal_env, database_url):
    code, shown = run_in_terminal(
        roleup_argv("integrations", "add", "prod", "--access-key-id", KEY_ID, "--no-validate"),
        terminal_env,
        [("Secret access key (hidden): ", SECRET)],
    )
    assert code == 0, shown
    assert "added integration prod" in shown
    assert SECRET not in shown  # not echoed as typed, nor printed after
    assert stored(database_url, "prod").access_key_hint == "AKIA…MPLE"


def test_on_a_terminal_remove_asks_for_the_name(terminal_env, database_url):
    add = roleup_argv("integrations", "add", "prod", "--access-key-id", KEY_ID, "--no-validate")
    assert run_in_terminal(add, terminal_env, [("hidden", SECRET)])[0] == 0
    remove = roleup_argv("integrations", "remove", "prod")
    code, shown = run_in_terminal(remove, terminal_env, [("Type its name to confirm:", "nope")])
    assert code == 1
    assert "not removing prod: the name typed did not match" in shown
    assert stored(database_url, "prod").name == "prod"
    code, shown = run_in_terminal(remove, terminal_env, [("Type its name to confirm:", "prod")])
    assert code == 0, shown
    assert "removed integration prod and all of its data" in shown
