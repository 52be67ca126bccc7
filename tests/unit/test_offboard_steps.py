"""The offboarding preview and the run come from one table: what the approver is shown is, row
by row, what the run removes. Against an in-memory IAM account, no AWS and no store."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bot.services import offboard_steps
from bot.services.offboard_steps import (
    CLEANUP,
    OFFBOARD_STEPS,
    PLAN_LABELS,
    STEP_LABELS,
    STEPS,
    Found,
    Target,
)
from bot.slack.approval_messages import plan_lines, render
from storage.models import Integration, Request, utcnow

ACCOUNT = "123456789012"
WRITES = ("put_", "delete_", "update_", "deactivate_", "detach_", "attach_", "remove_")


class OneOfEverything:
    """An IAM account, in memory, whose user bob holds one of everything offboarding removes."""

    def __init__(self) -> None:
        self.deleted = False
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.lists: dict[str, list[Any]] = {
            "list_access_keys": [{"AccessKeyId": "AKIABOB1", "Status": "Active"}],
            "list_signing_certificates": [{"CertificateId": "CERTBOB1", "Status": "Active"}],
            "list_ssh_public_keys": [{"SSHPublicKeyId": "APKABOB1", "Status": "Active"}],
            "list_mfa_devices": [{"SerialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/bob-phone"}],
            "list_user_policies": ["extra"],
            "list_attached_user_policies": [
                {"PolicyName": "bob-s3", "PolicyArn": f"arn:aws:iam::{ACCOUNT}:policy/bob-s3"}
            ],
            "list_groups_for_user": [{"GroupName": "developers"}],
        }
        self.keys = {
            "list_access_keys": "AccessKeyMetadata",
            "list_signing_certificates": "Certificates",
            "list_ssh_public_keys": "SSHPublicKeys",
            "list_mfa_devices": "MFADevices",
            "list_user_policies": "PolicyNames",
            "list_attached_user_policies": "AttachedPolicies",
            "list_groups_for_user": "Groups",
        }

    def _missing(self, operation: str) -> ClientError:
        error = {"Error": {"Code": "NoSuchEntity", "Message": "no such user"}}
        return ClientError(error, operation)  # type: ignore[arg-type]

    def get_user(self, UserName: str) -> dict[str, Any]:
        if self.deleted:
            raise self._missing("GetUser")
        arn = f"arn:aws:iam::{ACCOUNT}:user/{UserName}"
        return {"User": {"UserName": UserName, "UserId": "AIDABOB", "Arn": arn, "Path": "/"}}

    def get_login_profile(self, UserName: str) -> dict[str, Any]:
        return {"LoginProfile": {"UserName": UserName}}

    def get_access_key_last_used(self, AccessKeyId: str) -> dict[str, Any]:
        return {"AccessKeyLastUsed": {}}

    def list_service_specific_credentials(self, UserName: str) -> dict[str, Any]:
        credential = {"ServiceSpecificCredentialId": "ACCABOB1", "ServiceName": "codecommit"}
        return {"ServiceSpecificCredentials": [credential]}

    def __getattr__(self, operation: str) -> Any:
        if operation in self.lists:
            return lambda **_: {self.keys[operation]: self.lists[operation], "IsTruncated": False}
        if not operation.startswith(WRITES):
            raise AttributeError(operation)

        def write(**params: Any) -> dict[str, Any]:
            self.writes.append((operation, params))
            if operation == "delete_user":
                self.deleted = True
            return {}

        return write


@pytest.fixture
def integration() -> Integration:
    return Integration(id=1, name="prod", read_only=False, path_prefix="/")


def test_every_row_lists_what_it_removes_under_one_kind_of_its_own():
    kinds = [step.kind for step in STEPS if step.kind]
    assert len(kinds) == len(set(kinds))
    assert {step.kind: step.kind_label for step in STEPS if step.kind} == PLAN_LABELS
    for step in STEPS:
        # A row the preview lists from is a row the run removes with, and the other way round.
        assert bool(step.kind) == (step.listing is not None), step.key
        assert (step.remove is None) != (step.perform is None), step.key
        if step.phase == CLEANUP:
            assert step.listing is not None and step.remove is not None, step.key
    assert [step.key for step in STEPS] == OFFBOARD_STEPS
    assert STEP_LABELS["deny_all"] == "Attach a deny-all policy (live sessions stop)"
    assert STEP_LABELS["confirm_gone"] == "Confirm AWS no longer knows the user"


def test_for_a_user_with_one_of_everything_the_preview_lists_exactly_what_the_run_removes(
    integration, monkeypatch
):
    account = OneOfEverything()
    plan = offboard_steps.plan_offboard(account, integration, "bob")  # type: ignore[arg-type]

    removed: list[tuple[str, str]] = []
    performed: list[str] = []

    def recording(step: offboard_steps.Step) -> offboard_steps.Step:
        if step.remove is not None:
            remove = step.remove

            def remove_and_record(target: Target, found: Found) -> None:
                removed.append((step.kind, found.name))
                remove(target, found)

            return dataclasses.replace(step, remove=remove_and_record)
        assert step.perform is not None
        run = step.perform

        def perform_and_record(target: Target) -> None:
            performed.append(step.key)
            run(target)

        return dataclasses.replace(step, perform=perform_and_record)

    monkeypatch.setattr(offboard_steps, "STEPS", tuple(recording(step) for step in STEPS))
    reported: list[tuple[str, str]] = []
    assert offboard_steps.offboard_user(account, integration, "bob", lambda *r: reported.append(r))  # type: ignore[arg-type]

    # Every kind of thing is previewed, in checklist order, one line each.
    assert [item.kind for item in plan] == [step.kind for step in STEPS if step.kind]
    # Each previewed item of a removing row is the item that row removed...
    by_kind = {step.kind: step for step in STEPS if step.kind}
    assert sorted(removed) == sorted(
        (item.kind, item.name) for item in plan if by_kind[item.kind].remove is not None
    )
    # ...and the one row that acts without listing first (the password, a cut) ran too.
    previewed_steps = {by_kind[item.kind].key for item in plan}
    assert previewed_steps - {step.key for step in STEPS if step.kind and step.remove} == {
        "login_profile"
    }
    assert "login_profile" in performed
    assert [s for s, status in reported if status == "done"] == OFFBOARD_STEPS
    assert ("delete_login_profile", {"UserName": "bob"}) in account.writes
    # The approver reads each item under the label its row gives it.
    assert plan_lines({"items": [item.to_dict() for item in plan]}) == [
        "Console password",
        "Access key AKIABOB1 (active, never used)",
        "Signing certificate CERTBOB1 (Active)",
        "SSH key APKABOB1 (Active)",
        "Service-specific credential ACCABOB1 (codecommit)",
        f"MFA device arn:aws:iam::{ACCOUNT}:mfa/bob-phone",
        "Inline policy extra",
        f"Managed policy (detach) bob-s3 (arn:aws:iam::{ACCOUNT}:policy/bob-s3)",
        "Group membership developers",
    ]


def test_roleups_own_deny_all_is_never_previewed_and_never_removed_before_the_user(integration):
    account = OneOfEverything()
    account.lists["list_user_policies"] = [offboard_steps.DENY_ALL_POLICY_NAME]
    account.lists["list_attached_user_policies"] = [
        {"PolicyName": "AWSDenyAll", "PolicyArn": offboard_steps.AWS_DENY_ALL_ARN}
    ]
    plan = offboard_steps.plan_offboard(account, integration, "bob")  # type: ignore[arg-type]
    assert {item.kind for item in plan} & {"inline_policy", "attached_policy"} == set()

    assert offboard_steps.offboard_user(account, integration, "bob", lambda *r: None)  # type: ignore[arg-type]
    names = [op for op, _ in account.writes]
    # Both deny-alls go once, together, just before the user itself.
    deleting = names.index("delete_user")
    assert sorted(names[deleting - 2 : deleting]) == ["delete_user_policy", "detach_user_policy"]
    assert names.count("delete_user_policy") == names.count("detach_user_policy") == 1


def test_the_approvers_message_lists_what_goes_in_the_order_of_the_steps(integration):
    """The approver reads the preview in the order the run removes things: MFA devices after
    the service-specific credentials, the memberships last."""
    plan = offboard_steps.plan_offboard(OneOfEverything(), integration, "bob")  # type: ignore[arg-type]
    account = {"integration_id": 1, "integration": "prod", "user_name": "bob"}
    row = Request(
        id="0f0e0d0c-0b0a-4000-8000-000000000001",
        kind="offboard",
        requester="UMANAGER",
        state="pending",
        created_at=utcnow(),
        expires_at=utcnow() + timedelta(hours=24),
        steps=[],
        payload={
            "target": "bob",
            "accounts": [{**account, "plan": {"items": [item.to_dict() for item in plan]}}],
        },
    )
    _, blocks = render(row)
    shown = "\n".join(str(block) for block in blocks)
    labels = [step.kind_label for step in STEPS if step.kind]
    where = [shown.find(f"• {label}") for label in labels]
    assert -1 not in where, dict(zip(labels, where, strict=True))
    assert where == sorted(where), [label for _, label in sorted(zip(where, labels, strict=True))]
    assert where[labels.index("Service-specific credential")] < where[labels.index("MFA device")]
