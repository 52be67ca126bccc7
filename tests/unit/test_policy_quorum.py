"""How many approvers a request needs, whose approvals count, and when a reason is required:
pure policy, a table of cases."""

from __future__ import annotations

import pytest

from bot.services.policy import (
    INVITE_ONBOARD,
    OFFBOARD,
    ONBOARD,
    REMOVE_INTEGRATION,
    SET_GROUPS,
    Change,
    Privileges,
    RequestFacts,
    needs_approval,
    reason_required,
    tally,
)
from tests.support.policy_conf import Conf

PRIV = Privileges(groups=frozenset({"admins"}))
ADMIN_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
ONE, TWO, THREE = Conf(), Conf(approvals_required=2), Conf(approvals_required=3)


@pytest.mark.parametrize(
    ("change", "integrations", "approvals"),
    [
        (Change(OFFBOARD), [ONE], 1),
        (Change(OFFBOARD), [TWO], 2),
        (Change(OFFBOARD), [ONE, THREE, TWO], 3),  # several integrations: the largest N
        (Change(REMOVE_INTEGRATION), [TWO], 2),
        (Change(ONBOARD, groups_added=("admins",)), [TWO], 2),  # privileged grant
        (Change(SET_GROUPS, groups_added=("admins",)), [THREE], 3),
        (Change(ONBOARD, policies_added=(ADMIN_ARN,)), [TWO], 2),
        (Change(SET_GROUPS, groups_removed=("devs",)), [TWO], 1),  # not privileged: one
        (Change(ONBOARD), [Conf(approve_onboarding=True, approvals_required=2)], 1),
        (
            Change(SET_GROUPS, groups_added=("dev",)),
            [Conf(approve_group_grants=True, approvals_required=3)],
            1,
        ),
        (Change(OFFBOARD), [Conf(approvals_required=9)], 3),  # a damaged row is capped
        (Change(OFFBOARD), [Conf(approvals_required=0)], 1),
    ],
)
def test_how_many_approvers_a_request_needs(change, integrations, approvals):
    need = needs_approval(change, integrations, PRIV)
    assert need.required
    assert need.approvals == approvals


FACTS = RequestFacts(kind=OFFBOARD, requester="UREQ")
INVITE = RequestFacts(kind="invite_onboard", requester="UNEW", invite_creator="UCREATOR")
GRANT_TO_UBEN = RequestFacts(kind="set_groups", requester="UREQ", beneficiaries=frozenset({"UBEN"}))


@pytest.mark.parametrize(
    ("approvals", "required", "facts", "counted", "reached"),
    [
        ([], 2, FACTS, (), False),
        (["UAPRIL"], 2, FACTS, ("UAPRIL",), False),
        (["UAPRIL", "UBORIS"], 2, FACTS, ("UAPRIL", "UBORIS"), True),
        (["UAPRIL", "UAPRIL"], 2, FACTS, ("UAPRIL",), False),  # the same approver twice: once
        (["UREQ", "UAPRIL"], 2, FACTS, ("UAPRIL",), False),  # the requester never counts
        (["UCREATOR", "UAPRIL"], 2, INVITE, ("UAPRIL",), False),  # nor the invite's creator
        (["UBEN", "UAPRIL"], 2, GRANT_TO_UBEN, ("UAPRIL",), False),  # nor whose access it is
        (["UAPRIL", "UBORIS", "UCLARA"], 3, FACTS, ("UAPRIL", "UBORIS", "UCLARA"), True),
        (["UAPRIL"], 1, FACTS, ("UAPRIL",), True),
    ],
)
def test_whose_approvals_count(approvals, required, facts, counted, reached):
    result = tally(approvals, required, facts)
    assert result.counted == counted
    assert result.reached is reached
    assert result.missing == max(required - len(counted), 0)


@pytest.mark.parametrize(
    ("integrations", "required"),
    [
        ([Conf()], False),
        ([Conf(require_reason=True)], True),
        ([Conf(), Conf(require_reason=True)], True),  # any integration touched
        ([], False),
    ],
)
def test_when_a_reason_is_required(integrations, required):
    assert reason_required(integrations) is required
    assert reason_required(integrations, OFFBOARD) is required
    # The invitee is never asked: the invite's creator gave it when making the invite.
    assert reason_required(integrations, INVITE_ONBOARD) is False
