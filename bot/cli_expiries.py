"""`roleup expiries list`: the accounts onboarded until a date, soonest first.

Reading only; an expiring account is extended with its Extend button (a request under the
same rules as onboarding), or offboarded early with /offboard.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from bot.cli_common import CliError
from bot.cli_integrations import opened_core
from bot.services import account_expiry
from bot.settings import Settings


def list_expiries(args: argparse.Namespace, settings: Settings) -> int:
    within = None
    if args.within_days is not None:
        if not 0 < args.within_days <= account_expiry.MAX_DAYS + 1:
            raise CliError(f"--within-days must be from 1 to {account_expiry.MAX_DAYS + 1}")
        within = timedelta(days=args.within_days)
    with opened_core(settings, need_keys=False) as core, core.sessions() as session:
        rows = account_expiry.list_expiries(session, integration=args.integration, within=within)
    if not rows:
        print("no expiring accounts")
        return 0
    print("ID\tINTEGRATION\tUSER\tEXPIRES\tSTATE\tREQUESTER")
    for row in rows:
        print(
            f"{row.id}\t{row.integration}\t{row.user_name}\t"
            f"{account_expiry.shown(row.expires_at)}\t{row.state}\t{row.requester}"
        )
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("expiries", help="accounts onboarded until a date")
    esub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    elist = esub.add_parser("list", help="expiring accounts, soonest date first")
    elist.add_argument("--integration", metavar="NAME")
    elist.add_argument("--within-days", type=int, metavar="DAYS")
    elist.set_defaults(handler=list_expiries)
