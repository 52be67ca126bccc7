"""Comments and docs point only at what is in this repository (README.md, SECURITY.md, the
code): never at notes kept outside it, which a reader of the repository cannot open."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Spelled in pieces so that this file does not name them itself.
OUTSIDE = re.compile("|".join(("PRODUCT" + r"\.md", "STYLE" + r"\.md", r"\.\./" + "shared")))


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in listed.split("\0") if name]


def test_no_tracked_file_names_notes_kept_outside_the_repository() -> None:
    files = tracked_files()
    assert "README.md" in files and "bot/cli.py" in files
    offenders = []
    for name in files:
        if name.startswith("tests/data/") or not (ROOT / name).is_file():
            continue
        text = (ROOT / name).read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{name}:{number}: {line.strip()[:80]}")
    assert offenders == []
