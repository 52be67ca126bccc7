"""`roleup grants list|end`: the time-bound group grants, and ending one now.

The CLI runs with the host's authority (whoever has its environment has the keys), so ending a
grant here needs no Slack role; the audit log names the operating-system user.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from bot.cli_common import (
    CliError,
    actions,
    cli_actor,
    list_action,
    opened_core,
    period,
    print_table,
)
from bot.services import grants
from bot.services.errors import RoleUpError
from bot.services.grants import shown
from bot.settings import Settings

MAX_HOURS = 24 * 366


def list_grants(args: argparse.Namespace, settings: Settings) -> int:
    within = period(args.ending_within, MAX_HOURS, "--ending-within", timedelta(hours=1), " hours")
    with opened_core(settings, need_keys=False) as core, core.sessions() as session:
        rows = grants.list_grants(session, integration=args.integration, ending_within=within)
    table = [
        (r.id, r.integration, r.user_name, r.group, shown(r.ends_at), r.state, r.requester)
        for r in rows
    ]
    return print_table(
        ("ID", "INTEGRATION", "USER", "GROUP", "ENDS", "STATE", "REQUESTER"),
        table,
        empty="no active grants",
    )


def end_grant(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services import expiry  # here: ending a grant loads the IAM lifecycle

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
    gsub = actions(sub, "grants", "time-bound group grants")
    text = "active grants, soonest end first"
    list_action(gsub, text, list_grants, within="--ending-within", unit="HOURS")
    gend = gsub.add_parser("end", help="end a grant now (removes its membership)")
    gend.add_argument("id", type=int)
    gend.set_defaults(handler=end_grant)
