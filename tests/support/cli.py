"""Running `roleup ...`: in the test process (the `cli` fixture's `Result`) or as a real
`python -m bot` process with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Result:
    code: int
    out: str
    err: str


UNREACHABLE_DB = "postgresql+psycopg://nobody@127.0.0.1:1/none"
# Only so a broken server fails the test instead of hanging it; nothing is timed.
GIVE_UP_AFTER = 90.0


def roleup_env(**values: str) -> dict[str, str]:
    """The test process's environment without any RoleUp or Slack setting, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ROLEUP_"))}
    env.pop("DATABASE_URL", None)
    env.update(PYTHONUNBUFFERED="1", ROLEUP_SCHEDULER="off")
    env.update(values)
    return env


def run_roleup(
    *args: str, env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=GIVE_UP_AFTER,
        check=False,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str] | Result, *words: str) -> None:
    """A failed `roleup ...`, a process or in this process: one line on stderr with `words`."""
    code, err = (
        (result.code, result.err)
        if isinstance(result, Result)
        else (result.returncode, result.stderr)
    )
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("roleup: ")
    for word in words:
        assert word in lines[0]
