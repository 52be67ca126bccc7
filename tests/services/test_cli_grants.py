"""`roleup grants list|end` against the test store and an in-process moto IAM."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.services import grants, requesting
from bot.services.grants import Term
from bot.services.sync import sync_integration
from storage.models import AuditEvent, Grant
from tests.support.seed import add_integration


@pytest.fixture
def granted(core, iam):
    integration_id = add_integration(core)
    iam.create_user(UserName="alice")
    for group in ("devs", "ops"):
        iam.create_group(GroupName=group)
    sync_integration(core, integration_id, actor="test")
    for group, hours in (("devs", 2), ("ops", 48)):
        requesting.request_set_groups(
            core,
            actor="UMANAGER",
            integration_id=integration_id,
            user_name="alice",
            wanted=[group] if group == "devs" else ["devs", "ops"],
            term=Term(seconds=hours * 3600),
        )
    with core.sessions() as session:
        return {g.group_name: g for g in session.query(Grant)}


def test_list_shows_active_grants_soonest_first_and_filters(cli, granted):
    result = cli("grants", "list")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].split("\t") == [
        "ID", "INTEGRATION", "USER", "GROUP", "ENDS", "STATE", "REQUESTER"
    ]  # fmt: skip
    assert [line.split("\t")[3] for line in lines[1:]] == ["devs", "ops"]
    assert grants.shown(granted["devs"].ends_at) in lines[1]

    soon = cli("grants", "list", "--ending-within", "3")
    assert [line.split("\t")[3] for line in soon.out.splitlines()[1:]] == ["devs"]
    assert cli("grants", "list", "--integration", "other").out.strip() == "no active grants"
    bad = cli("grants", "list", "--ending-within", "0")
    assert bad.code == 1 and "--ending-within must be from 1" in bad.err


def test_end_removes_the_membership_now_and_names_the_operator(cli, granted, iam, core):
    result = cli("grants", "end", str(granted["ops"].id))
    assert result.code == 0, result.err
    assert f"grant {granted['ops'].id} ended: ops removed from alice" in result.out
    groups = [g["GroupName"] for g in iam.list_groups_for_user(UserName="alice")["Groups"]]
    assert groups == ["devs"]
    with core.sessions() as session:
        ended = session.get(Grant, granted["ops"].id)
        actors = {e.actor for e in session.query(AuditEvent).filter_by(action="request.done")}
    assert ended.state == "ended" and ended.end_reason.startswith("ended early by cli:")
    assert any(a.startswith("cli:") for a in actors)

    again = cli("grants", "end", str(granted["ops"].id))
    assert again.code == 1 and "already ended" in again.err
    missing = cli("grants", "end", "999999")
    assert missing.code == 1 and "There is no grant 999999" in missing.err


def test_the_window_is_counted_from_now(granted):
    assert granted["ops"].ends_at - granted["devs"].ends_at >= timedelta(hours=45)
