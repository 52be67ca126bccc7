"""Test modules share helpers through tests/support/ and conftest.py, never through each other."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.source import nodes

TESTS = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[str]:
    walked = nodes(path)
    modules = [alias.name for n in walked if isinstance(n, ast.Import) for alias in n.names]
    for n in walked:
        if isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                base = ".".join([*path.parent.relative_to(TESTS.parent).parts, base]).strip(".")
            modules += [base] + [f"{base}.{alias.name}" for alias in n.names]
    return modules


def test_no_test_module_imports_another():
    offenders = [
        f"{path.relative_to(TESTS.parent)} imports {module}"
        for path in sorted(TESTS.rglob("test_*.py"))
        for module in imported_modules(path)
        if module.startswith("tests.") and any(p.startswith("test_") for p in module.split("."))
    ]
    assert offenders == []
