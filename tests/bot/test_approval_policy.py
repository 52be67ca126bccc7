"""What needs an approver, and who may decide: table-driven, no store, no Slack."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bot.services.approval_policy import (
    INVITE_ONBOARD,
    OFFBOARD,
    ONBOARD,
    REMOVE_INTEGRATION,
    SET_GROUPS,
    approval_required,
    may_decide,
    recipients,
)


@dataclass
class Conf:
    name: str = "prod"
    managers: list[str] = field(default_factory=lambda: ["UMANAGER"])
    approvers: list[str] = field(default_factory=lambda: ["UAPPROVER", "SAPPROVERS"])
    approvals_channel: str | None = "CAPPROVALS"
    approve_onboarding: bool = False
    approve_group_grants: bool = False


STRICT = Conf(approve_onboarding=True, approve_group_grants=True)
LAX = Conf()


@pytest.mark.parametrize(
    ("kind", "integration", "payload", "needed"),
    [
        (OFFBOARD, LAX, {}, True),
        (REMOVE_INTEGRATION, LAX, {}, True),
        (INVITE_ONBOARD, LAX, {}, True),
        (ONBOARD, LAX, {}, False),
        (ONBOARD, STRICT, {}, True),
        (SET_GROUPS, LAX, {"added": ["dev"], "removed": []}, False),
        (SET_GROUPS, STRICT, {"added": ["dev"], "removed": []}, True),
        (SET_GROUPS, LAX, {"added": [], "removed": ["admins"]}, True),
        (SET_GROUPS, LAX, {"added": ["dev"], "removed": ["admins"]}, True),
        (SET_GROUPS, STRICT, {"added": [], "removed": []}, False),
    ],
)
def test_what_needs_approval(kind, integration, payload, needed):
    assert approval_required(kind, [integration], payload) is needed


def test_offboarding_across_integrations_needs_approval_even_if_none_asks_for_it():
    assert approval_required(OFFBOARD, [LAX, Conf(name="dev")], {}) is True


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown request kind"):
        approval_required("drop_tables", [LAX], {})


def in_group(user: str, group: str) -> bool:
    return (user, group) == ("UGROUPIE", "SAPPROVERS")


@pytest.mark.parametrize(
    ("approver", "requester", "kind", "allowed", "reason"),
    [
        ("UAPPROVER", "UMANAGER", OFFBOARD, True, ""),
        ("UGROUPIE", "UMANAGER", OFFBOARD, True, ""),
        ("UAPPROVER", "UAPPROVER", OFFBOARD, False, "someone else has to approve"),
        ("UMANAGER", "UOTHER", OFFBOARD, False, "Only the approvers of integration prod"),
        ("URANDOM", "UMANAGER", SET_GROUPS, False, "Only the approvers"),
        ("UADMIN", "UMANAGER", OFFBOARD, False, "Only the approvers"),
        ("UADMIN", "UADMIN2", REMOVE_INTEGRATION, True, ""),
        ("UADMIN", "UADMIN", REMOVE_INTEGRATION, False, "someone else"),
        ("UMANAGER", "UNEWBIE", INVITE_ONBOARD, True, ""),
        ("UMANAGER", "UNEWBIE", ONBOARD, False, "Only the approvers"),
    ],
)
def test_who_may_decide(approver, requester, kind, allowed, reason):
    decision = may_decide(
        approver=approver,
        requester=requester,
        kind=kind,
        integrations=[LAX],
        admins={"UADMIN", "UADMIN2"},
        member_of=in_group,
    )
    assert decision.allowed is allowed
    assert reason in decision.reason


def test_a_request_over_two_integrations_needs_an_approver_of_both():
    other = Conf(name="dev", approvers=["UDEVAPPROVER"])
    decision = may_decide(
        approver="UAPPROVER",
        requester="UMANAGER",
        kind=OFFBOARD,
        integrations=[LAX, other],
        admins=set(),
    )
    assert not decision.allowed
    assert "integration dev" in decision.reason


def test_a_request_whose_integration_is_gone_cannot_be_decided():
    decision = may_decide(
        approver="UAPPROVER", requester="UMANAGER", kind=OFFBOARD, integrations=[], admins=set()
    )
    assert not decision.allowed


def test_recipients_are_the_channel_or_else_each_decider():
    assert recipients(OFFBOARD, [LAX], set()).channels == ["CAPPROVALS"]
    no_channel = Conf(approvals_channel=None)
    to = recipients(OFFBOARD, [no_channel], set())
    assert to.channels == [] and to.people == ["UAPPROVER", "SAPPROVERS"]
    to = recipients(REMOVE_INTEGRATION, [Conf(approvals_channel=None, approvers=[])], {"UADMIN"})
    assert to.people == ["UADMIN"]
    assert recipients(OFFBOARD, [Conf(approvals_channel=None, approvers=[])], set()).empty
