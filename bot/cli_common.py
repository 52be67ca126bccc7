"""What bot.cli and the modules of its commands (bot.cli_integrations, bot.cli_sync,
bot.cli_audit) share: its own module, so that bot.cli can import those commands at the top."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta


class CliError(Exception):
    """Ends the command with exit status 1 and this one line."""


def cli_actor() -> str:
    """Who the audit log says did it: the operating-system user running the command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = str(os.getuid())
    return f"cli:{user}"[:64]


def period(
    value: int | None, most: int, flag: str, unit: timedelta, units: str = ""
) -> timedelta | None:
    """A `--flag N` of whole units from 1 to `most` as a timedelta (None when not given)."""
    if value is None:
        return None
    if not 0 < value <= most:
        raise CliError(f"{flag} must be from 1 to {most}{units}")
    return value * unit


def print_table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    empty: str,
    empty_to_stderr: bool = False,
) -> int:
    """Tab-separated lines under a header, or the one line `empty` when there are none."""
    lines = ["\t".join(str(cell) for cell in row) for row in rows]
    if not lines:
        print(empty, file=sys.stderr if empty_to_stderr else sys.stdout)
        return 0
    print("\t".join(header))
    for line in lines:
        print(line)
    return 0


def actions(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """`roleup NAME ACTION ...`: the command and the parser of its actions."""
    parser = sub.add_parser(name, help=text)
    return parser.add_subparsers(dest="action", metavar="ACTION", required=True)


def list_action(
    acts: argparse._SubParsersAction[argparse.ArgumentParser],
    text: str,
    handler: Callable[..., int],
    *,
    within: str,
    unit: str,
) -> None:
    """`list [--integration NAME] [WITHIN N]`: what the time-bound listings take."""
    parser = acts.add_parser("list", help=text)
    parser.add_argument("--integration", metavar="NAME")
    parser.add_argument(within, type=int, metavar=unit)
    parser.set_defaults(handler=handler)
