"""The guarded UPDATE that every move of a row from one state to the next is made of: its WHERE
names the state the row must still be in, so of two processes making the same move one changes
the row and the other finds nothing to change, and does nothing more."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from storage.models import Base


def guarded_update(
    session: Session, model: type[Base], where: Iterable[ColumnElement[bool]], **values: Any
) -> int:
    """UPDATE `model` SET `values` WHERE all of `where`; how many rows it changed (1: this
    caller made the move)."""
    result = session.execute(
        update(model).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
