"""`roleup expiries list` against the test store: expiring accounts, soonest date first."""

from __future__ import annotations

from datetime import timedelta

from storage.models import AccountExpiry, utcnow
from tests.support.seed import add_integration


def test_list_shows_expiring_accounts_soonest_first_and_filters(cli, core):
    prod = add_integration(core)
    dev = add_integration(core, "dev")
    now = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    with core.sessions.begin() as session:
        for integration_id, name, days, state in (
            (prod, "later", 40, "scheduled"),
            (dev, "soon", 3, "scheduled"),
            (prod, "gone", 1, "ended"),
        ):
            session.add(
                AccountExpiry(
                    integration_id=integration_id,
                    user_name=name,
                    requester="UMANAGER",
                    expires_at=now + timedelta(days=days),
                    state=state,
                )
            )
    result = cli("expiries", "list")
    assert result.code == 0
    lines = [line.split("\t") for line in result.out.splitlines()]
    assert lines[0] == ["ID", "INTEGRATION", "USER", "EXPIRES", "STATE", "REQUESTER"]
    assert [(line[1], line[2]) for line in lines[1:]] == [("dev", "soon"), ("prod", "later")]
    assert lines[1][3] == (now + timedelta(days=3)).strftime("%Y-%m-%d")
    assert [line.split("\t")[2] for line in cli("expiries", "list", "--integration", "prod")
            .out.splitlines()[1:]] == ["later"]  # fmt: skip
    within = cli("expiries", "list", "--within-days", "7").out.splitlines()
    assert [line.split("\t")[2] for line in within[1:]] == ["soon"]
    refused = cli("expiries", "list", "--within-days", "0")
    assert refused.code != 0 and "--within-days must be from 1 to 366" in refused.err


def test_an_empty_list_says_so(cli, core):
    assert cli("expiries", "list").out.strip() == "no expiring accounts"
