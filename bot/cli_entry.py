"""The `roleup` command's entry point (also `python -m bot`).

bot.cli imports the modules of every command, which takes a second or more on a busy host. A
platform may stop a `roleup worker` at any moment, its first second included, and SIGTERM must
then be a clean stop (exit 0), not Python's default death (143): so for `worker` the stop
handler goes in first (bot.worker.catch_stop_signals, which run_worker adopts), before that
import. Other commands keep the default signals.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if command_of(args) == "worker":
        from bot.worker import catch_stop_signals

        catch_stop_signals()
    from bot.cli import main as cli_main

    return cli_main(args)


def command_of(args: Sequence[str]) -> str | None:
    """The command word: the first argument that is no option (the global ones, -v and -h,
    take no value)."""
    return next((arg for arg in args if not arg.startswith("-")), None)
