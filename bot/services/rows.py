"""Read-only views of store rows: a dataclass whose fields are (mostly) a row's columns is built
from the row by name, so a column added to both is not also added to a third list."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def from_row(cls: type[T], row: object, **overrides: Any) -> T:
    """`cls` with each field read from the row's attribute of the same name; `overrides` give
    the fields the row names otherwise or does not hold (a missing one is an AttributeError,
    not a silent default)."""
    values = {
        f.name: getattr(row, f.name)
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name not in overrides
    }
    return cls(**values, **overrides)
