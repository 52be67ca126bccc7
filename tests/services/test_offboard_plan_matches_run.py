"""On a real (moto) user with one of everything: each item the approver's preview lists is
removed by the run, and the run removes nothing the preview did not list."""

from __future__ import annotations

from sqlalchemy import select

from bot.services import lifecycle
from bot.services.offboard_steps import (
    AWS_DENY_ALL_ARN,
    DENY_ALL_POLICY_NAME,
    OFFBOARD_STEPS,
    PLAN_LABELS,
    PlanItem,
)
from storage.models import AuditEvent
from tests.support.iam_users import furnish_user, gone

# The call that removes one previewed item of each kind, and the parameter naming the item.
REMOVALS = {
    "login_profile": ("DeleteLoginProfile", None),
    "access_key": ("DeleteAccessKey", "AccessKeyId"),
    "signing_certificate": ("DeleteSigningCertificate", "CertificateId"),
    "ssh_key": ("DeleteSSHPublicKey", "SSHPublicKeyId"),
    "service_credential": ("DeleteServiceSpecificCredential", "ServiceSpecificCredentialId"),
    "mfa_device": ("DeactivateMFADevice", "SerialNumber"),
    "inline_policy": ("DeleteUserPolicy", "PolicyName"),
    "attached_policy": ("DetachUserPolicy", "PolicyArn"),
    "group": ("RemoveUserFromGroup", "GroupName"),
}
# RoleUp's own deny-all: put by the run, removed with the user, never previewed.
OWN = {DENY_ALL_POLICY_NAME, AWS_DENY_ALL_ARN}


def named(item: PlanItem) -> tuple[str, str | None]:
    """A previewed item as its removal names it to AWS."""
    if item.kind == "login_profile":
        return item.kind, None
    return item.kind, item.detail if item.kind == "attached_policy" else item.name


def test_what_the_preview_lists_is_exactly_what_the_run_removes(
    core, make_integration, iam, aws_calls
):
    furnish_user(iam)
    integration = make_integration()
    assert set(REMOVALS) == set(PLAN_LABELS)

    plan = lifecycle.plan_offboard(core, integration.id, "bob", actor="UREQ")
    result = lifecycle.offboard(core, integration.id, "bob", actor="UAPPROVER")

    previewed = {named(item) for item in plan.items}
    removed = {
        (kind, params.get(parameter) if parameter else None)
        for kind, (operation, parameter) in REMOVALS.items()
        for params in aws_calls.params(operation)
        if not (parameter and params.get(parameter) in OWN)
    }
    assert removed == previewed
    # One of everything moto can hold (it has no service-specific credentials): two keys,
    # two groups, one of each other kind.
    counts = {kind: [i.kind for i in plan.items].count(kind) for kind in PLAN_LABELS}
    assert counts == {
        **dict.fromkeys(PLAN_LABELS, 1),
        "access_key": 2,
        "group": 2,
        "service_credential": 0,
    }
    assert gone(iam, "bob")
    assert [step for step, status in result.steps if status == "done"] == OFFBOARD_STEPS
    with core.sessions() as session:
        audited = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.action == "iam.offboard.step")
        ).all()
    assert [d["step"] for d in audited] == OFFBOARD_STEPS
