"""Runs a command on a real pseudo-terminal, answering its prompts as a person would."""

from __future__ import annotations

import os
import pty
import select
import time
from collections.abc import Mapping, Sequence

# Only so a broken command fails the test instead of hanging it; nothing is timed.
GIVE_UP_AFTER = 60.0


def run_in_terminal(
    argv: Sequence[str], env: Mapping[str, str], answers: Sequence[tuple[str, str]] = ()
) -> tuple[int, str]:
    """Run argv with a terminal as stdin/stdout/stderr; for each (prompt, reply), wait for the
    prompt then type the reply. Returns the exit status and everything the terminal showed."""
    pid, master = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal
        os.execve(argv[0], list(argv), dict(env))  # noqa: S606 - a test runs a known argv
    shown = b""
    pending = list(answers)
    answered_upto = 0  # prompts before this offset were already answered
    deadline = time.monotonic() + GIVE_UP_AFTER
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            at = shown.find(pending[0][0].encode(), answered_upto) if pending else -1
            if at >= 0:
                answered_upto = at + len(pending[0][0])
                os.write(master, pending.pop(0)[1].encode() + b"\n")
        else:
            os.kill(pid, 9)
    finally:
        os.close(master)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")
