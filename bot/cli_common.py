"""What bot.cli and the modules of its commands (bot.cli_integrations, bot.cli_sync,
bot.cli_audit) share: its own module, so that bot.cli can import those commands at the top.

A command loads what it alone needs inside its handler (the services, the store, boto3): every
`roleup` run builds the whole parser, so whatever a command module imports at the top, every
command pays for (`roleup sync` is timed whole in bench/sync.py)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.services.container import Core
    from bot.settings import Settings


class CliError(Exception):
    """Ends the command with exit status 1 and this one line."""


@contextmanager
def opened_core(settings: Settings, *, need_keys: bool = False) -> Iterator[Core]:
    """The store (checked reachable and migrated) and the key box, closed afterwards. Nobody
    scrapes a command's metrics, so none are kept (bot.metrics.Uncounted)."""
    from bot.app import create_core
    from bot.metrics import Uncounted
    from storage.db import check_store
    from storage.migrate import check_schema

    if need_keys:
        settings.require_keys()
    core = create_core(settings, Uncounted())
    try:
        check_store(core.engine)
        check_schema(core.engine)
        yield core
    finally:
        core.engine.dispose()


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
