"""Two-person approval on both stores: N distinct approvers, the requester never counts, a Deny
ends it, and it runs exactly once when the Nth approval lands, under concurrent clicks too."""

from __future__ import annotations

from functools import partial

import pytest
from sqlalchemy import select

from bot.app import create_core
from bot.services import approvals
from bot.services.approvals import APPROVED, DENIED, DONE, PENDING
from bot.services.errors import InvalidInput, NotAllowed, RequestConflict
from bot.services.policy import Standing
from bot.services.reasons import Justification, ReasonRequired
from storage.models import AuditEvent, Integration, Request, RequestApproval
from tests.support import seed
from tests.support.concurrency import race
from tests.support.requests import submit_request, typed_payload

APPROVERS = ["UAPRIL", "UBORIS", "UCLARA", "UMANAGER"]


class People:
    """Slack standing by user id (everyone else a member); nobody is in a user group."""

    def __init__(self, standing: dict[str, Standing] | None = None) -> None:
        self.by_user = standing or {}

    def member_of(self, user_id: str, usergroup_id: str) -> bool:
        return False

    def standing(self, user_id: str) -> Standing:
        return self.by_user.get(user_id, Standing.MEMBER)


@pytest.fixture
def core(settings):
    core = create_core(settings)
    core.people = People()
    yield core
    core.engine.dispose()


# A two-person integration, without a key.
add_integration = partial(seed.add_integration, key=None, approvers=APPROVERS, approvals_required=2)


def offboard(core, *integration_ids: int, requester: str = "UMANAGER") -> Request:
    accounts = [{"integration_id": i, "user_name": "alice"} for i in integration_ids]
    return submit_request(
        core,
        kind="offboard",
        integration_id=integration_ids[0],
        requester=requester,
        payload={"target": "alice", "accounts": accounts},
    )


def actions(core, request_id) -> list[str]:
    with core.sessions() as s:
        query = select(AuditEvent.action).where(AuditEvent.request_id == request_id)
        return list(s.scalars(query.order_by(AuditEvent.id)))


def approvers_stored(core, request_id) -> list[str]:
    with core.sessions() as s:
        query = select(RequestApproval.approver).where(RequestApproval.request_id == request_id)
        return sorted(s.scalars(query))


def approve(core, request_id, who, **kwargs):
    return approvals.decide(
        core, request_id, approver=who, approve=True, execute_now=False, **kwargs
    )


def test_a_two_person_offboarding_waits_for_a_second_distinct_approver(core):
    row = offboard(core, add_integration(core))
    assert row.approvals_required == 2
    first = approve(core, row.id, "UAPRIL")
    assert first.state == PENDING
    assert approvals.tally_of(first).counted == ("UAPRIL",)
    with pytest.raises(RequestConflict, match="already approved this request: it needs 1 more"):
        approve(core, row.id, "UAPRIL")  # a double click counts once
    assert approvals.load(core, row.id).state == PENDING
    second = approve(core, row.id, "UBORIS")
    assert second.state == APPROVED
    assert second.decided_by == "UBORIS"
    assert approvers_stored(core, row.id) == ["UAPRIL", "UBORIS"]
    assert actions(core, row.id) == [
        "request.created",
        "request.approval_added",
        "request.approval_added",
        "request.approved",
    ]


def test_the_requester_never_counts_towards_the_quorum(core):
    # UMANAGER is listed as an approver too, and asks: their click is refused and not stored.
    row = offboard(core, add_integration(core))
    with pytest.raises(NotAllowed, match="someone else has to approve it"):
        approve(core, row.id, "UMANAGER")
    approve(core, row.id, "UAPRIL")
    assert approvals.load(core, row.id).state == PENDING
    assert approvers_stored(core, row.id) == ["UAPRIL"]
    assert "request.decide_refused" in actions(core, row.id)


@pytest.mark.parametrize("standing", [Standing.GUEST, Standing.DEACTIVATED, Standing.UNKNOWN])
def test_guests_and_deactivated_approvers_are_refused_and_never_counted(core, standing):
    core.people = People({"UBORIS": standing})
    row = offboard(core, add_integration(core))
    approve(core, row.id, "UAPRIL")
    with pytest.raises(NotAllowed):
        approve(core, row.id, "UBORIS")
    assert approvals.load(core, row.id).state == PENDING
    assert approvers_stored(core, row.id) == ["UAPRIL"]


def test_a_deny_by_any_approver_ends_a_two_person_request(core):
    row = offboard(core, add_integration(core))
    approve(core, row.id, "UAPRIL")
    denied = approvals.decide(core, row.id, approver="UBORIS", approve=False)
    assert denied.state == DENIED
    with pytest.raises(RequestConflict, match="already denied by <@UBORIS>"):
        approve(core, row.id, "UCLARA")
    assert approvers_stored(core, row.id) == ["UAPRIL"]


def test_an_offboarding_over_several_integrations_needs_the_largest_quorum(core):
    one = add_integration(core, "dev", approvals_required=1)
    three = add_integration(core, "prod", approvals_required=3)
    row = offboard(core, one, three)
    assert row.approvals_required == 3
    approve(core, row.id, "UAPRIL")
    assert approve(core, row.id, "UBORIS").state == PENDING
    assert approve(core, row.id, "UCLARA").state == APPROVED


def test_a_quorum_no_listed_people_can_reach_is_refused_at_once(core):
    integration_id = add_integration(core, approvers=["UAPRIL", "UMANAGER"])
    with pytest.raises(NotAllowed, match="needs 2 different approvers"):
        offboard(core, integration_id)
    with core.sessions() as s:
        assert s.scalars(select(Request)).all() == []


def test_a_privileged_grant_needs_the_quorum_and_a_group_removal_one_approver(core):
    integration_id = add_integration(core, privileged_groups=["admins"])

    def regroup(**change):
        return submit_request(
            core,
            kind="set_groups",
            integration_id=integration_id,
            requester="UMANAGER",
            payload={"user_name": "bob", **change},
        )

    assert regroup(removed=["devs"]).approvals_required == 1
    assert regroup(added=["admins"]).approvals_required == 2


def test_concurrent_approvals_by_several_approvers_run_the_request_exactly_once(core):
    integration_id = add_integration(core)
    row = submit_request(
        core,
        kind="remove_integration",
        integration_id=integration_id,
        requester="UADMIN",
        payload={},
    )
    assert row.approvals_required == 2
    clickers = ["UAPRIL", "UAPRIL", "UBORIS", "UBORIS", "UCLARA", "UCLARA", "UADMIN", "UAPRIL"]

    def click(index: int) -> str:
        return approvals.decide(core, row.id, approver=clickers[index], approve=True).state

    race(len(clickers), click)
    assert approvals.load(core, row.id).state == DONE
    done = actions(core, row.id)
    assert done.count("request.approved") == 1
    assert done.count("request.running") == 1
    assert done.count("integration.removed") == 1
    assert done.count("request.done") == 1
    assert "UADMIN" not in approvers_stored(core, row.id)  # the requester never counts
    # Exactly the quorum: approvals landing together never add a third approver to it.
    assert len(approvers_stored(core, row.id)) == 2


def test_a_failed_two_person_request_is_retried_by_one_approver(core):
    row = offboard(core, add_integration(core))
    approve(core, row.id, "UAPRIL")
    approve(core, row.id, "UBORIS")
    with core.sessions.begin() as s:
        s.get(Request, row.id).state = "failed"
    retried = approvals.retry(core, row.id, approver="UCLARA")
    # It ran again at once (alice is in no AWS here, so it fails again, but it ran).
    assert "request.retried" in actions(core, retried.id)
    assert actions(core, row.id).count("request.running") == 1


def test_a_request_without_a_reason_is_refused_when_the_integration_requires_one(core):
    integration_id = add_integration(core, require_reason=True)
    payload = typed_payload(
        core,
        "offboard",
        integration_id,
        {"target": "alice", "accounts": [{"integration_id": integration_id, "user_name": "alice"}]},
    )
    with pytest.raises(ReasonRequired, match="requires a reason"):
        approvals.submit(core, payload, requester="UMANAGER")
    with core.sessions() as s:
        assert s.scalars(select(Request)).all() == []
        assert s.scalars(select(AuditEvent)).all() == []
    for hostile in (
        Justification(reason="x" * 501),
        Justification(reason="ok", ticket="javascript:alert(1)"),
        Justification(reason="bidi \u202e"),
    ):
        with pytest.raises(InvalidInput):  # checked again, whoever built it
            approvals.submit(core, payload, requester="UMANAGER", why=hostile)
    with core.sessions() as s:
        assert s.scalars(select(Request)).all() == []
    why = Justification(reason="Left the company <!channel>", ticket="SEC-123")
    row = approvals.submit(core, payload, requester="UMANAGER", why=why)
    assert (row.reason, row.ticket) == ("Left the company <!channel>", "SEC-123")
    with core.sessions() as s:
        created = s.scalars(select(AuditEvent).where(AuditEvent.action == "request.created")).one()
    assert created.detail["reason"] == "Left the company <!channel>"
    assert created.detail["ticket"] == "SEC-123"


@pytest.mark.parametrize("how", ["removed", "deactivated"])
def test_an_approval_stops_counting_once_its_approver_may_no_longer_decide(core, how):
    # Attack: an approver approves, is then taken off the list (or their Slack account is
    # deactivated), and their approval still made up half of a two-person quorum.
    integration_id = add_integration(core)
    row = offboard(core, integration_id)
    approve(core, row.id, "UAPRIL")
    if how == "removed":
        with core.sessions.begin() as s:
            s.get(Integration, integration_id).approvers = ["UBORIS", "UCLARA", "UMANAGER"]
    else:
        core.people = People({"UAPRIL": Standing.DEACTIVATED})
    assert approve(core, row.id, "UBORIS").state == PENDING
    assert approvers_stored(core, row.id) == ["UBORIS"]
    assert "request.approval_dropped" in actions(core, row.id)
    done = approve(core, row.id, "UCLARA")
    assert done.state == APPROVED
    assert approvals.tally_of(done).counted == ("UBORIS", "UCLARA")


def test_an_approval_whose_approver_slack_cannot_read_now_is_kept_but_not_counted(core):
    row = offboard(core, add_integration(core))
    approve(core, row.id, "UAPRIL")
    core.people = People({"UAPRIL": Standing.UNKNOWN})  # users.info failing for a moment
    assert approve(core, row.id, "UBORIS").state == PENDING
    assert approvers_stored(core, row.id) == ["UAPRIL", "UBORIS"]
    assert "request.approval_dropped" not in actions(core, row.id)


def test_an_approval_landing_once_the_quorum_is_full_is_refused_and_not_recorded(core):
    # Two approvals committed, the request not yet moved on (as when three approvers click at
    # once): the third is told it has its approvals, and the quorum stays the two of them.
    row = offboard(core, add_integration(core))
    with core.sessions.begin() as s:
        for who in ("UAPRIL", "UBORIS"):
            s.add(RequestApproval(request_id=row.id, approver=who))
    with pytest.raises(RequestConflict, match="already has the 2 approvals it needs"):
        approve(core, row.id, "UCLARA")
    assert approvers_stored(core, row.id) == ["UAPRIL", "UBORIS"]
    assert "request.approval_added" not in actions(core, row.id)


def test_an_edit_lowering_the_quorum_or_listing_the_requester_lets_nothing_through(core):
    # An admin (or a stale form) lowers approvals_required to 1 and lists the requester as an
    # approver while a two-person offboarding waits with one approval: what was asked for (two
    # people, never the requester) is what it still needs.
    from bot.services.integration_update import IntegrationChanges, update_integration

    integration = add_integration(core, approvers=["UAPRIL", "UBORIS"])
    row = offboard(core, integration)
    approve(core, row.id, "UAPRIL")
    update_integration(
        core,
        "prod",
        IntegrationChanges(approvals_required=1, approvers=["UAPRIL", "UBORIS", "UMANAGER"]),
        actor="UADMIN",
        validate=False,
    )
    assert approvals.load(core, row.id).state == PENDING
    with pytest.raises(RequestConflict, match="it needs 1 more"):
        approve(core, row.id, "UAPRIL")
    with pytest.raises(NotAllowed, match="someone else has to approve it"):
        approve(core, row.id, "UMANAGER")
    assert approvals.load(core, row.id).state == PENDING
    assert approvers_stored(core, row.id) == ["UAPRIL"]
    assert approve(core, row.id, "UBORIS").state == APPROVED


def test_a_request_approved_as_its_integration_turns_read_only_is_refused_when_it_runs(core):
    # The approval click lands between the update's save and its failing of pending requests:
    # the request is approved (so not failed as pending), and must not write through the
    # now read-only integration when it runs.
    from bot.services.integration_update import IntegrationChanges, update_integration

    row = offboard(core, add_integration(core, approvals_required=1))
    assert approve(core, row.id, "UAPRIL").state == APPROVED
    result = update_integration(
        core, "prod", IntegrationChanges(read_only=True), actor="UADMIN", validate=False
    )
    assert result.failed_requests == []  # it was no longer pending
    ran = approvals.execute(core, row.id, actor="UAPRIL")
    assert ran.state == "failed"
    assert "prod is read-only: RoleUp cannot" in (ran.outcome or "")
