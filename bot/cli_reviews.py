"""`roleup review list|export`: access review campaigns, and one campaign's items as evidence
for auditors (CSV or JSON lines), from the store alone."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.cli_common import CliError, actions, opened_core, print_table
from bot.services import review_export
from bot.services.errors import RoleUpError
from bot.services.reviews import shown
from bot.settings import Settings


def list_campaigns(args: argparse.Namespace, settings: Settings) -> int:
    with opened_core(settings) as core:
        found = review_export.list_campaigns(core)
    return print_table(
        ("ID", "INTEGRATION", "STATE", "DUE", "DECIDED"),
        ((c.id, c.integration, c.state, shown(c.due_at), f"{c.decided}/{c.total}") for c in found),
        empty="no access reviews yet: start one with /roleup review start",
        empty_to_stderr=True,
    )


def export_campaign(args: argparse.Namespace, settings: Settings) -> int:
    with opened_core(settings) as core:
        try:
            if args.output:
                with Path(args.output).open("w", encoding="utf-8", newline="") as out:
                    count = review_export.export(core, args.campaign, out, args.format)
                print(f"wrote {count} items to {args.output}", file=sys.stderr)
            else:
                review_export.export(core, args.campaign, sys.stdout, args.format)
        except RoleUpError as err:
            raise CliError(str(err)) from None
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rsub = actions(sub, "review", "access review campaigns")
    rlist = rsub.add_parser(
        "list", help="one campaign a line: id, integration, state, due, decided"
    )
    rlist.set_defaults(handler=list_campaigns)
    rexport = rsub.add_parser("export", help="one campaign's items, for auditors")
    rexport.add_argument("campaign", type=int, metavar="CAMPAIGN")
    rexport.add_argument("--format", choices=review_export.FORMATS, default="csv")
    rexport.add_argument("--output", "-o", metavar="FILE", help="default: standard output")
    rexport.set_defaults(handler=export_campaign)
