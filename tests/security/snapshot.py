"""What the store holds, as plain data, to prove a refused request changed nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from storage.models import Base

# The retry guard notes every delivery it lets through (a signed click is a delivery, refused
# or not), and the invite page's rate limit counts every request, refused or not: transport
# bookkeeping, not a change of anything the request could have changed.
BOOKKEEPING = frozenset({"slack_deliveries", "rate_limit_hits"})


def store_snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted, so two snapshots compare equal iff nothing changed."""
    snapshot: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in BOOKKEEPING:
                continue
            rows = conn.execute(select(table)).all()
            snapshot[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return snapshot


def all_cells(engine: Engine) -> list[tuple[str, str, str]]:
    """(table, column, value as text) for every non-null cell: what a database thief reads."""
    cells: list[tuple[str, str, str]] = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                for column, value in row.items():
                    if value is not None:
                        cells.append((table.name, column, str(value)))
    return cells


def encodings(secret: str) -> list[str]:
    """The ways a secret can appear in text: as is, form-encoded, JSON-escaped."""
    import json
    from urllib.parse import quote, quote_plus

    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    forms.add(quote_plus(json.dumps(secret)[1:-1]))
    return sorted(forms)


def leaks(secret: str, text: str) -> list[str]:
    """Which encodings of `secret` occur in `text` (empty when none)."""
    return [form for form in encodings(secret) if form in text]
