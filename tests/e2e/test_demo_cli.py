"""`roleup demo` as a person runs it: a subprocess with a scripted standard input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_demo(
    lines: list[str], *, cwd: Path, command: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command or [sys.executable, "-m", "bot", "demo"],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=240,
        check=False,
    )


def test_scripted_session_runs_and_leaves_cleanly(repo_root: Path) -> None:
    done = run_demo(["help", "switch", "messages", "quit"], cwd=repo_root)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "RoleUp is running at http://127.0.0.1:" in out
    assert "AWS account 123456789012 (moto) has IAM users alice, bob, carol, dave, erin" in out
    assert "maya> help\n" in out
    assert "You are now Arjun Approver (approver)." in out
    assert "arjun> quit\n" in out
    assert out.rstrip().endswith("Bye: the demo's database and IAM are thrown away.")
    assert "Traceback" not in done.stderr


def test_accounts_from_a_pipe_lists_the_seeded_users(repo_root: Path) -> None:
    done = run_demo(["/accounts", "quit"], cwd=repo_root)
    assert done.returncode == 0, done.stderr
    listing = done.stdout.split("maya> /accounts\n", 1)[1]
    for user in ("alice", "bob", "carol", "dave", "erin"):
        assert f"*{user}*" in listing
    assert "Traceback" not in done.stderr


def test_end_of_input_ends_the_demo(repo_root: Path) -> None:
    done = run_demo([], cwd=repo_root)
    assert done.returncode == 0, done.stderr
    assert "Bye" in done.stdout


def test_quick_start_script_runs_the_demo(repo_root: Path) -> None:
    done = run_demo(["quit"], cwd=repo_root, command=["bash", "scripts/demo.sh"])
    assert done.returncode == 0, done.stderr
    assert "RoleUp is running at" in done.stdout
