"""Scans for plaintext secrets: every column of every row of the store, and any text."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, column, inspect, select, table


def rows_containing(engine: Engine, needle: str) -> list[str]:
    """`table.column` of every stored value (any table, any type) whose text contains needle."""
    found: list[str] = []
    with engine.connect() as conn:
        for name in inspect(conn).get_table_names():
            columns = [c["name"] for c in inspect(conn).get_columns(name)]
            query = select(*(column(c) for c in columns)).select_from(table(name))
            for row in conn.execute(query):
                for col, value in zip(columns, row, strict=True):
                    if needle in _text(value):
                        found.append(f"{name}.{col}")
    return found


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)
