"""What bot.cli and the modules of its commands (bot.cli_integrations, bot.cli_sync,
bot.cli_audit) share: its own module, so that bot.cli can import those commands at the top."""

from __future__ import annotations

import getpass
import os


class CliError(Exception):
    """Ends the command with exit status 1 and this one line."""


def cli_actor() -> str:
    """Who the audit log says did it: the operating-system user running the command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = str(os.getuid())
    return f"cli:{user}"[:64]
