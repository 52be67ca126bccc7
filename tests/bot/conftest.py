"""The `cli` fixture: `roleup ...` run in this process against the test store."""

from __future__ import annotations

import io
import logging
import sys
from dataclasses import dataclass

import pytest

from bot.cli import main
from tests.conftest import TEST_KEY


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(database_url, monkeypatch, capsys):
    """Runs `roleup ...` in this process against the test database; stdin is a pipe."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ROLEUP_ENCRYPTION_KEYS", TEST_KEY)
    # main() sets up the process's logging; put it back so later tests see theirs.
    root = logging.getLogger()
    handlers, level, factory = list(root.handlers), root.level, logging.getLogRecordFactory()

    def run(*argv: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield run
    root.handlers = handlers
    root.setLevel(level)
    logging.setLogRecordFactory(factory)
