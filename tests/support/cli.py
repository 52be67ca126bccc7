"""What `roleup ...` run in the test process answered (the `cli` fixture's result)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Result:
    code: int
    out: str
    err: str
