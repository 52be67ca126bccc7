"""Line input and output for the demo, the same whether a person types or a script is piped in.

When standard input is not a terminal, each line read is echoed after its prompt so that the
transcript reads as the session did. End of input answers None (the demo then leaves).
"""

from __future__ import annotations

import sys
from typing import TextIO


class Console:
    def __init__(
        self, stdin: TextIO | None = None, stdout: TextIO | None = None, *, echo: bool | None = None
    ) -> None:
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        interactive = _isatty(self.stdin) and _isatty(self.stdout)
        self.use_readline = interactive and stdin is None
        self.echo = (not interactive) if echo is None else echo

    def say(self, *lines: str) -> None:
        for line in lines:
            self.stdout.write(line + "\n")
        self.stdout.flush()

    def ask(self, prompt: str) -> str | None:
        """One line without its newline, or None at end of input."""
        if self.use_readline:
            try:
                return input(prompt)
            except EOFError:
                self.say("")
                return None
        self.stdout.write(prompt)
        self.stdout.flush()
        line = self.stdin.readline()
        if not line:
            self.stdout.write("\n")
            self.stdout.flush()
            return None
        line = line.rstrip("\r\n")
        if self.echo:
            self.stdout.write(line + "\n")
            self.stdout.flush()
        return line


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
