"""The integration Add and Edit modals offer the sync interval the service accepts, no narrower."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.services.errors import InvalidInput
from bot.services.integrations import MAX_SYNC_MINUTES, MIN_SYNC_MINUTES
from bot.services.records import IntegrationInfo
from handlers.admin.integration_add import IntegrationAddView
from handlers.admin.integration_edit import IntegrationEditView
from tests.support.modal import text

WHEN = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def integration(minutes: int) -> IntegrationInfo:
    return IntegrationInfo(
        id=1, name="prod", read_only=False, path_prefix="/", access_key_hint="AKIA…WXYZ",
        role_arn=None, aws_account_id="123456789012", managers=[], approvers=[],
        approvals_channel=None, sync_interval_minutes=minutes, approve_onboarding=False,
        approve_group_grants=False, require_reason=False, approvals_required=1,
        privileged_policies=[], privileged_groups=[], breakglass=[], review_every_days=None,
        principal_arn=None, rotate_every_days=None, credentials_changed_at=None,
        retiring_key_id=None, created_by="UADMIN", created_at=WHEN, updated_at=WHEN,
        last_sync_at=None, last_sync_status=None, last_sync_error=None, health_status=None,
        health_detail=None, health_checked_at=None, uses_key=True,
    )  # fmt: skip


def interval_input(view: dict[str, Any]) -> dict[str, Any]:
    (block,) = [b for b in view["blocks"] if b.get("block_id") == IntegrationAddView.INTERVAL]
    return dict(block["element"])


@pytest.mark.parametrize(
    "view",
    [IntegrationAddView.build(), IntegrationEditView.build(integration(MIN_SYNC_MINUTES))],
    ids=["add", "edit"],
)
def test_both_modals_offer_the_services_own_interval_bounds(view):
    element = interval_input(view)
    assert (element["min_value"], element["max_value"]) == ("1", "1440")
    assert (MIN_SYNC_MINUTES, MAX_SYNC_MINUTES) == (1, 1440)


def test_edit_shows_the_current_interval_and_add_starts_at_fifteen_minutes():
    assert interval_input(IntegrationAddView.build())["initial_value"] == "15"
    assert interval_input(IntegrationEditView.build(integration(1)))["initial_value"] == "1"


def add_submission(minutes: str) -> dict[str, Any]:
    a = IntegrationAddView.ACTION
    values = {
        IntegrationAddView.NAME: {a: text("prod")},
        IntegrationAddView.ROLE: {a: text("arn:aws:iam::123456789012:role/roleup")},
        IntegrationAddView.PREFIX: {a: text("/")},
        IntegrationAddView.INTERVAL: {a: {"type": "number_input", "value": minutes}},
    }
    return {**IntegrationAddView.build(), "state": {"values": values}}


def test_add_accepts_the_one_minute_interval_the_service_allows():
    assert IntegrationAddView.parse(add_submission("1")).sync_interval_minutes == 1


@pytest.mark.parametrize("minutes", ["0", "1441", "2.5", "-1"])
def test_add_refuses_an_interval_out_of_bounds_in_one_sentence(minutes):
    with pytest.raises(InvalidInput) as refused:
        IntegrationAddView.parse(add_submission(minutes))
    assert str(refused.value) == "A whole number of minutes, 1 to 1440."
    assert refused.value.field == IntegrationAddView.INTERVAL
