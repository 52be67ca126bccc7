"""SECURITY.md names a test for each threat: every one of them must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_test_security_md_cites_exists():
    text = (ROOT / "SECURITY.md").read_text()
    cited = REFERENCE.findall(text)
    assert len(cited) >= 5, "SECURITY.md should cite the tests that cover its threats"
    missing = []
    for file, name in cited:
        path = ROOT / file
        if not path.exists() or name not in defined_tests(path):
            missing.append(f"{file}::{name}")
    assert missing == [], f"SECURITY.md cites tests that do not exist: {missing}"


def test_security_md_names_every_asset_and_boundary():
    text = (ROOT / "SECURITY.md").read_text().lower()
    for word in (
        "integration keys",
        "fernet",
        "signing secret",
        "password",
        "invite token",
        "approval rights",
        "/invite/<token>",
        "aws",
        "the store",
    ):
        assert word in text, word
