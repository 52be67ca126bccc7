"""`roleup grants list|end`: the time-bound group grants, and ending one now.

The CLI runs with the host's authority (whoever has its environment has the keys), so ending a
grant here needs no Slack role; the audit log names the operating-system user.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from bot.cli_common import CliError, cli_actor
from bot.cli_integrations import opened_core
from bot.services import expiry, grants
from bot.services.errors import RoleUpError
from bot.settings import Settings

MAX_HOURS = 24 * 366


def list_grants(args: argparse.Namespace, settings: Settings) -> int:
    within = None
    if args.ending_within is not None:
        if not 0 < args.ending_within <= MAX_HOURS:
            raise CliError(f"--ending-within must be from 1 to {MAX_HOURS} hours")
        within = timedelta(hours=args.ending_within)
    with opened_core(settings, need_keys=False) as core, core.sessions() as session:
        rows = grants.list_grants(session, integration=args.integration, ending_within=within)
    if not rows:
        print("no active grants")
        return 0
    print("ID\tINTEGRATION\tUSER\tGROUP\tENDS\tSTATE\tREQUESTER")
    for row in rows:
        print(
            f"{row.id}\t{row.integration}\t{row.user_name}\t{row.group}\t"
            f"{grants.shown(row.ends_at)}\t{row.state}\t{row.requester}"
        )
    return 0


def end_grant(args: argparse.Namespace, settings: Settings) -> int:
    with opened_core(settings, need_keys=True) as core:
        try:
            result = expiry.end_now(core, args.id, actor=cli_actor(), trusted=True)
        except RoleUpError as err:
            raise CliError(str(err)) from None
    grant = result.grant
    print(
        f"grant {grant.id} ended: {grant.group} removed from {grant.user_name} ({grant.end_reason})"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("grants", help="time-bound group grants")
    gsub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    glist = gsub.add_parser("list", help="active grants, soonest end first")
    glist.add_argument("--integration", metavar="NAME")
    glist.add_argument("--ending-within", type=int, metavar="HOURS")
    glist.set_defaults(handler=list_grants)
    gend = gsub.add_parser("end", help="end a grant now (removes its membership)")
    gend.add_argument("id", type=int)
    gend.set_defaults(handler=end_grant)
