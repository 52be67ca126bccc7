"""`roleup expiries list`: the accounts onboarded until a date, soonest first.

Reading only; an expiring account is extended with its Extend button (a request under the
same rules as onboarding), or offboarded early with /offboard.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from bot.cli_common import actions, list_action, opened_core, period, print_table
from bot.services import account_expiry
from bot.services.account_expiry import shown
from bot.settings import Settings


def list_expiries(args: argparse.Namespace, settings: Settings) -> int:
    most = account_expiry.MAX_DAYS + 1
    within = period(args.within_days, most, "--within-days", timedelta(days=1))
    with opened_core(settings, need_keys=False) as core, core.sessions() as session:
        rows = account_expiry.list_expiries(session, integration=args.integration, within=within)
    table = [
        (r.id, r.integration, r.user_name, shown(r.expires_at), r.state, r.requester) for r in rows
    ]
    return print_table(
        ("ID", "INTEGRATION", "USER", "EXPIRES", "STATE", "REQUESTER"),
        table,
        empty="no expiring accounts",
    )


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    esub = actions(sub, "expiries", "accounts onboarded until a date")
    text = "expiring accounts, soonest date first"
    list_action(esub, text, list_expiries, within="--within-days", unit="DAYS")
