"""The approval rules as a table: what needs an approver (and why), who may decide. One row per
rule of README's "Who can decide what"; no store, no Slack."""

from __future__ import annotations

import pytest

from bot.services.policy import (
    EXPIRE_ACCOUNT,
    EXTEND_ACCOUNT,
    INVITE_ONBOARD,
    OFFBOARD,
    ONBOARD,
    REMOVE_INTEGRATION,
    SET_GROUPS,
    Action,
    Change,
    Privileges,
    Reason,
    RequestFacts,
    Standing,
    can,
    managers_may_complete,
    may_decide,
    needs_approval,
    recipients,
)
from tests.support.policy_conf import Conf

STRICT = Conf(approve_onboarding=True, approve_group_grants=True)
GRANTS = Conf(approve_group_grants=True)
LAX = Conf()
PRIV = Privileges(groups=frozenset({"admins"}))
ADMIN_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ARN = "arn:aws:iam::aws:policy/ReadOnlyAccess"


@pytest.mark.parametrize(
    ("change", "integration", "needed", "why"),
    [
        (Change(OFFBOARD), LAX, True, "offboarding"),
        (Change(REMOVE_INTEGRATION), LAX, True, "removing an integration"),
        (Change(ONBOARD), LAX, False, ""),
        (Change(ONBOARD), STRICT, True, "onboarding approved"),
        (Change(ONBOARD, groups_added=("dev",)), LAX, False, ""),
        (Change(ONBOARD, groups_added=("dev",)), GRANTS, True, "group grants"),
        (Change(ONBOARD, groups_added=("admins",)), LAX, True, "privileged grant: admins"),
        (Change(ONBOARD, policies_added=(ADMIN_ARN,)), LAX, True, "AdministratorAccess"),
        (Change(ONBOARD, policies_added=(READ_ARN,)), LAX, False, ""),
        (Change(INVITE_ONBOARD), LAX, True, "completed by a manager or an approver"),
        (Change(INVITE_ONBOARD, groups_added=("admins",)), LAX, True, "privileged"),
        (Change(SET_GROUPS, groups_added=("dev",)), LAX, False, ""),
        (Change(SET_GROUPS, groups_added=("dev",)), GRANTS, True, "group grants"),
        (Change(SET_GROUPS, groups_added=("admins",)), LAX, True, "privileged"),
        (Change(SET_GROUPS, groups_removed=("admins",)), LAX, True, "removal"),
        (Change(SET_GROUPS, groups_removed=("dev",)), LAX, True, "removal"),
        (Change(EXPIRE_ACCOUNT), STRICT, False, "approved with the account"),
        (Change(EXTEND_ACCOUNT), LAX, False, ""),
        (Change(EXTEND_ACCOUNT), STRICT, True, "onboarding approved"),
        (Change(EXTEND_ACCOUNT, groups_added=("dev",)), GRANTS, True, "group grants"),
        (Change(EXTEND_ACCOUNT, groups_added=("admins",)), LAX, True, "privileged grant"),
        (Change(EXTEND_ACCOUNT, policies_added=(ADMIN_ARN,)), LAX, True, "AdministratorAccess"),
        (Change(EXTEND_ACCOUNT, self_service=True), LAX, True, "their own access"),
    ],
)
def test_what_needs_an_approver(change, integration, needed, why):
    need = needs_approval(change, [integration], PRIV)
    assert need.required is needed
    assert why in need.why


def test_privileged_policies_match_by_name_or_arn_and_the_list_is_the_integrations():
    mine = Privileges(policies=frozenset({"BillingFullAccess"}))
    billing = "arn:aws:iam::123456789012:policy/BillingFullAccess"
    assert needs_approval(Change(ONBOARD, policies_added=(billing,)), [LAX], mine).required
    assert not needs_approval(Change(ONBOARD, policies_added=(ADMIN_ARN,)), [LAX], mine).required


def test_a_grant_over_two_integrations_needs_approval_if_either_asks():
    change = Change(SET_GROUPS, groups_added=("dev",))
    assert needs_approval(change, [LAX, GRANTS], Privileges()).required


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown request kind"):
        needs_approval(Change("drop_tables"), [LAX], Privileges())


@pytest.mark.parametrize(
    ("change", "integration", "managers"),
    [
        (Change(INVITE_ONBOARD), LAX, True),
        (Change(INVITE_ONBOARD, groups_added=("dev",)), LAX, True),
        (Change(INVITE_ONBOARD, groups_added=("dev",)), GRANTS, False),
        (Change(INVITE_ONBOARD), STRICT, False),
        (Change(INVITE_ONBOARD, groups_added=("admins",)), LAX, False),
        (Change(INVITE_ONBOARD, policies_added=(ADMIN_ARN,)), LAX, False),
        (Change(ONBOARD), LAX, False),
    ],
)
def test_a_manager_completes_an_invite_only_when_the_same_onboard_needs_no_approver(
    change, integration, managers
):
    assert managers_may_complete(change, [integration], PRIV) is managers


def in_group(user: str, group: str) -> bool:
    return (user, group) == ("UGROUPIE", "SAPPROVERS")


ADMINS = {"UADMIN", "UADMIN2"}
M = Standing.MEMBER


@pytest.mark.parametrize(
    ("decider", "facts", "standing", "allowed", "reason"),
    [
        ("UAPPROVER", RequestFacts(OFFBOARD, "UMANAGER"), M, True, Reason.APPROVER),
        ("UGROUPIE", RequestFacts(OFFBOARD, "UMANAGER"), M, True, Reason.APPROVER),
        ("UAPPROVER", RequestFacts(OFFBOARD, "UAPPROVER"), M, False, Reason.REQUESTER),
        ("UMANAGER", RequestFacts(OFFBOARD, "UOTHER"), M, False, Reason.NOT_APPROVER),
        ("URANDOM", RequestFacts(SET_GROUPS, "UMANAGER"), M, False, Reason.NOT_APPROVER),
        ("UADMIN", RequestFacts(OFFBOARD, "UMANAGER"), M, False, Reason.NOT_APPROVER),
        ("UADMIN", RequestFacts(REMOVE_INTEGRATION, "UADMIN2"), M, True, Reason.APPROVER),
        ("UADMIN", RequestFacts(REMOVE_INTEGRATION, "UADMIN"), M, False, Reason.REQUESTER),
        # An invite: managers only when the same /onboard needs no approver; never its creator.
        (
            "UMANAGER",
            RequestFacts(INVITE_ONBOARD, "UNEWBIE", "UOTHERMANAGER", managers_too=True),
            M,
            True,
            Reason.APPROVER,
        ),
        (
            "UMANAGER",
            RequestFacts(INVITE_ONBOARD, "UNEWBIE", "UOTHERMANAGER", managers_too=False),
            M,
            False,
            Reason.NOT_APPROVER,
        ),
        (
            "UMANAGER",
            RequestFacts(INVITE_ONBOARD, "UNEWBIE", "UMANAGER", managers_too=True),
            M,
            False,
            Reason.INVITE_CREATOR,
        ),
        (
            "UAPPROVER",
            RequestFacts(INVITE_ONBOARD, "UNEWBIE", "UAPPROVER"),
            M,
            False,
            Reason.INVITE_CREATOR,
        ),
        ("UMANAGER", RequestFacts(ONBOARD, "UNEWBIE"), M, False, Reason.NOT_APPROVER),
        # Nobody approves access for their own account (a grant, an extension, an onboarding).
        (
            "UAPPROVER",
            RequestFacts(SET_GROUPS, "UMANAGER", beneficiaries=frozenset({"UAPPROVER"})),
            M,
            False,
            Reason.OWN_ACCOUNT,
        ),
        (
            "UAPPROVER",
            RequestFacts(SET_GROUPS, "UMANAGER", beneficiaries=frozenset({"UOTHER"})),
            M,
            True,
            Reason.APPROVER,
        ),
        # Guests, deactivated accounts and people Slack could not vouch for never decide.
        ("UAPPROVER", RequestFacts(OFFBOARD, "UMANAGER"), Standing.GUEST, False, Reason.GUEST),
        (
            "UAPPROVER",
            RequestFacts(OFFBOARD, "UMANAGER"),
            Standing.DEACTIVATED,
            False,
            Reason.DEACTIVATED,
        ),
        (
            "UAPPROVER",
            RequestFacts(OFFBOARD, "UMANAGER"),
            Standing.UNKNOWN,
            False,
            Reason.UNVERIFIED,
        ),
    ],
)
def test_who_may_decide(decider, facts, standing, allowed, reason):
    decision = may_decide(decider, facts, [LAX], ADMINS, in_group, standing)
    assert decision.allowed is allowed
    assert decision.reason == reason
    if not allowed:
        assert decision.text  # a plain sentence for the clicker


def test_a_request_over_two_integrations_needs_an_approver_of_both():
    other = Conf(name="dev", approvers=["UDEVAPPROVER"])
    decision = may_decide(
        "UAPPROVER", RequestFacts(OFFBOARD, "UM"), [LAX, other], set(), in_group, M
    )
    assert not decision.allowed
    assert "integration dev" in decision.text


def test_a_request_whose_integration_is_gone_cannot_be_decided():
    assert not may_decide("UAPPROVER", RequestFacts(OFFBOARD, "UM"), [], set(), in_group, M).allowed


@pytest.mark.parametrize("standing", [Standing.GUEST, Standing.DEACTIVATED, Standing.UNKNOWN])
@pytest.mark.parametrize("action", list(Action))
def test_guests_and_deactivated_accounts_request_nothing(standing, action):
    admin_and_manager = Conf(managers=["UBOSS"], approvers=["UBOSS"])
    assert not can("UBOSS", action, admin_and_manager, {"UBOSS"}, in_group, standing).allowed


def test_recipients_are_the_channel_or_else_each_decider_but_never_the_excluded():
    assert recipients(OFFBOARD, [LAX], set()).channels == ["CAPPROVALS"]
    no_channel = Conf(approvals_channel=None)
    to = recipients(OFFBOARD, [no_channel], set())
    assert to.channels == [] and to.people == ["UAPPROVER", "SAPPROVERS"]
    to = recipients(OFFBOARD, [no_channel], set(), excluded={"UAPPROVER"})
    assert to.people == ["SAPPROVERS"]
    to = recipients(REMOVE_INTEGRATION, [Conf(approvals_channel=None, approvers=[])], {"UADMIN"})
    assert to.people == ["UADMIN"]
    assert recipients(OFFBOARD, [Conf(approvals_channel=None, approvers=[])], set()).empty
    lone = Conf(approvals_channel=None, approvers=["UMANAGER"])
    assert recipients(SET_GROUPS, [lone], set(), excluded={"UMANAGER"}).empty


def test_privileged_names_match_whatever_their_case():
    assert needs_approval(Change(ONBOARD, groups_added=("Admins",)), [LAX], PRIV).required
    lower = "arn:aws:iam::aws:policy/administratoraccess"
    assert needs_approval(Change(ONBOARD, policies_added=(lower,)), [LAX], PRIV).required
