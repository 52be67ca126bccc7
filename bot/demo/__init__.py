"""`roleup demo`: the real app, driven from a terminal that plays Slack, with nothing external.

It starts a temporary SQLite store, an in-process moto IAM seeded with a small company, a
local stand-in for the Slack Web API, and the real RoleUp app on a loopback port; then a
terminal plays Slack for a pretend manager and a pretend approver, sending really signed
requests to the app and showing what it sends back. Standard input may be a script.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from io import StringIO
from typing import TextIO

from bot.cli_common import CliError
from bot.settings import Settings

#: The one command that adds what the demo needs to an install (README.md, "Demo").
DEMO_INSTALL = "pip install 'roleup-aws[demo]'"


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    """The `roleup demo` command."""
    require_moto()
    return play(settings, verbose=bool(getattr(args, "verbose", False)))


def require_moto() -> None:
    """The demo's IAM is moto, an optional extra: a production install leaves it out, so its
    absence is one line naming the install command, not a traceback from deep in the demo."""
    try:
        import moto  # noqa: F401
    except ImportError:
        raise CliError(
            f"the demo needs moto, which this install leaves out; install it with: {DEMO_INSTALL}"
        ) from None


def play(
    settings: Settings,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    verbose: bool = False,
) -> int:
    """Run one demo session until `quit` or the end of input."""
    from bot.demo.console import Console
    from bot.demo.world import DemoWorld

    console = Console(stdin, stdout)
    console.say(
        "Starting RoleUp locally: SQLite, an in-process AWS IAM (moto), a stand-in Slack..."
    )
    world = DemoWorld(settings, verbose=verbose).start()
    try:
        console.say(*world.banner())
        return world.terminal(console).run()
    finally:
        world.close()


def run_script(settings: Settings, lines: Iterable[str]) -> str:
    """Play the demo with these input lines; return everything it printed."""
    output = StringIO()
    play(settings, stdin=StringIO("".join(line + "\n" for line in lines)), stdout=output)
    return output.getvalue()
