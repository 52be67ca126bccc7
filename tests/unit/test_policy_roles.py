"""The roles table: who may do what, and who is named when someone may not."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bot.services.policy import Action, Reason, Standing, can, no_help

M = Standing.MEMBER

ADMINS = frozenset({"UADMIN"})


@dataclass
class Roster:
    name: str = "prod"
    managers: list[str] = field(default_factory=lambda: ["UMANAGER", "SMANAGERS"])
    approvers: list[str] = field(default_factory=lambda: ["UAPPROVER"])


GROUPS = {("UINGROUP", "SMANAGERS")}


def member_of(user: str, group: str) -> bool:
    return (user, group) in GROUPS


PROD = Roster()
A = Action
CASES = [
    # actor, action, integration, allowed, reason
    ("UADMIN", A.MANAGE_INTEGRATIONS, None, True, Reason.ADMIN),
    ("UADMIN", A.READ_AUDIT, None, True, Reason.ADMIN),
    ("UADMIN", A.SYNC, None, True, Reason.ADMIN),
    ("UADMIN", A.SYNC, PROD, True, Reason.ADMIN),
    ("UADMIN", A.LIST_ACCOUNTS, PROD, True, Reason.ADMIN),
    ("UADMIN", A.LIST_INTEGRATIONS, PROD, True, Reason.ADMIN),
    ("UADMIN", A.ONBOARD, PROD, False, Reason.NOT_MANAGER),
    ("UADMIN", A.DECIDE, PROD, False, Reason.NOT_APPROVER),
    ("UMANAGER", A.MANAGE_INTEGRATIONS, None, False, Reason.NOT_ADMIN),
    ("UMANAGER", A.READ_AUDIT, None, False, Reason.NOT_ADMIN),
    ("UMANAGER", A.ONBOARD, PROD, True, Reason.MANAGER),
    ("UMANAGER", A.OFFBOARD, PROD, True, Reason.MANAGER),
    ("UMANAGER", A.CHANGE_GROUPS, PROD, True, Reason.MANAGER),
    ("UMANAGER", A.LINK, PROD, True, Reason.MANAGER),
    ("UMANAGER", A.SYNC, PROD, True, Reason.MANAGER),
    ("UMANAGER", A.SYNC, None, False, Reason.NO_INTEGRATION),
    ("UMANAGER", A.LIST_ACCOUNTS, PROD, True, Reason.MANAGER),
    ("UMANAGER", A.DECIDE, PROD, False, Reason.NOT_APPROVER),
    ("UINGROUP", A.ONBOARD, PROD, True, Reason.MANAGER),
    ("UINGROUP", A.LIST_ACCOUNTS, PROD, True, Reason.MANAGER),
    ("UAPPROVER", A.DECIDE, PROD, True, Reason.APPROVER),
    ("UAPPROVER", A.LIST_ACCOUNTS, PROD, True, Reason.APPROVER),
    ("UAPPROVER", A.ONBOARD, PROD, False, Reason.NOT_MANAGER),
    ("UAPPROVER", A.SYNC, PROD, False, Reason.NOT_MANAGER),
    ("USTRANGER", A.LIST_ACCOUNTS, PROD, False, Reason.NO_ROLE),
    ("USTRANGER", A.ONBOARD, PROD, False, Reason.NOT_MANAGER),
    ("USTRANGER", A.DECIDE, PROD, False, Reason.NOT_APPROVER),
    ("USTRANGER", A.MANAGE_INTEGRATIONS, None, False, Reason.NOT_ADMIN),
    ("USTRANGER", A.ONBOARD, None, False, Reason.NO_INTEGRATION),
    # A user group id typed as an actor is not a way in.
    ("SMANAGERS", A.ONBOARD, PROD, False, Reason.NOT_MANAGER),
]


@pytest.mark.parametrize(("actor", "action", "integration", "allowed", "reason"), CASES)
def test_roles_table(actor, action, integration, allowed, reason):
    decision = can(actor, action, integration, ADMINS, member_of, M)
    assert (decision.allowed, decision.reason) == (allowed, reason)


@pytest.mark.parametrize(
    ("actor", "action", "helpers"),
    [
        ("USTRANGER", A.ONBOARD, ("UMANAGER", "SMANAGERS")),
        ("USTRANGER", A.DECIDE, ("UAPPROVER",)),
        ("USTRANGER", A.LIST_ACCOUNTS, ("UMANAGER", "SMANAGERS")),
        ("USTRANGER", A.READ_AUDIT, ("UADMIN",)),
    ],
)
def test_refusals_name_who_can_help(actor, action, helpers):
    decision = can(actor, action, PROD, ADMINS, member_of, M)
    assert decision.who_can_help == helpers


def test_an_integration_without_managers_sends_people_to_the_admins():
    bare = Roster(managers=[], approvers=[])
    decision = can("USTRANGER", A.ONBOARD, bare, ADMINS, no_help, M)
    assert not decision.allowed and decision.who_can_help == ("UADMIN",)
    assert not can("USTRANGER", A.DECIDE, bare, ADMINS, no_help, M).allowed


def test_user_groups_are_only_asked_about_for_group_entries():
    asked = []

    def spy(user, group):
        asked.append((user, group))
        return False

    can("UMANAGER", A.ONBOARD, PROD, ADMINS, spy, M)
    assert asked == []  # listed directly: no Slack call needed
    can("UOTHER", A.ONBOARD, PROD, ADMINS, spy, M)
    assert asked == [("UOTHER", "SMANAGERS")]
