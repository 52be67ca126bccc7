"""The repository's Python source as syntax trees, each file read, parsed and walked once a test
process: several checks (imports, Block Kit literals, escapers, IAM calls) look at the same
files, and parsing them is most of what those checks cost."""

from __future__ import annotations

import ast
import functools
from pathlib import Path


@functools.cache
def parsed(path: Path) -> ast.Module:
    """The module at `path` (not to be changed: every check shares it)."""
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


@functools.cache
def nodes(path: Path) -> tuple[ast.AST, ...]:
    """Every node of the module at `path`, in ast.walk's order."""
    return tuple(ast.walk(parsed(path)))
