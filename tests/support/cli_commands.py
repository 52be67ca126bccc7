"""Every command line the roleup CLI's parser accepts, subcommand by subcommand."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from bot.cli import build_parser


def _every_command(parser: argparse.ArgumentParser, prefix: list[str]) -> Iterator[list[str]]:
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _every_command(sub, [*prefix, name])


COMMANDS = list(_every_command(build_parser(), []))
