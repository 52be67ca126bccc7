"""bot.services.records.from_row: a record is read from a row by field name, overrides first."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from bot.services.records import from_row


@dataclass(frozen=True)
class View:
    id: int
    name: str
    integration: str
    note: str | None = None


def test_fields_are_read_by_name_and_overrides_win() -> None:
    row = SimpleNamespace(id=7, name="alice", note="n", integration="ignored", extra="x")
    assert from_row(View, row, integration="prod") == View(7, "alice", "prod", "n")


def test_a_field_the_row_lacks_is_an_error_not_a_silent_default() -> None:
    row = SimpleNamespace(id=7, name="alice")
    with pytest.raises(AttributeError, match="note"):
        from_row(View, row, integration="prod")
