"""`roleup sync [--integration NAME]`: sync now, with progress on a terminal and one summary line
per integration. Exit status 1 if any integration failed (the others still sync)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from bot.cli_common import CliError, cli_actor, opened_core
from bot.services import integrations
from bot.services.errors import RoleUpError
from bot.services.sync import sync_integration
from bot.settings import Settings


def run_sync(args: argparse.Namespace, settings: Settings) -> int:
    with opened_core(settings, need_keys=True) as core:
        if args.integration:
            with core.sessions() as session:
                targets = [integrations.get_integration(session, args.integration)]
        else:
            targets = integrations.list_integrations(core)
        if not targets:
            raise CliError("no integrations yet: add one with `roleup integrations add`")
        failures = 0
        for integration in targets:
            meter = ProgressLine(integration.name, sys.stderr)
            try:
                report = sync_integration(
                    core, integration.id, actor=cli_actor(), progress=meter.update
                )
            except RoleUpError as err:
                meter.clear()
                print(f"{integration.name}: sync failed: {err}", file=sys.stderr)
                failures += 1
                continue
            meter.clear()
            print(report.summary())
    return 1 if failures else 0


class ProgressLine:
    """One line rewritten in place on a terminal; silent when stderr is a file or a pipe."""

    def __init__(self, name: str, out: TextIO) -> None:
        self.name = name
        self.out = out
        self.live = out.isatty()
        self.pages = 0
        self.accounts = 0

    def update(self, stage: str, count: int) -> None:
        if stage == "pages":
            self.pages = count
        elif stage == "accounts":
            self.accounts = count
        if self.live:
            self.out.write(
                f"\r{self.name}: {self.pages} pages fetched, {self.accounts} accounts written"
            )
            self.out.flush()

    def clear(self) -> None:
        if self.live:
            self.out.write("\r\033[K")
            self.out.flush()
