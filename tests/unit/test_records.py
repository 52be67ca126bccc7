"""The records handed to the Slack surfaces mirror their rows' columns, minus the secret ones."""

from __future__ import annotations

import dataclasses

from bot.services.audit import AuditEntry
from bot.services.records import IntegrationInfo
from storage.models import AuditEvent, Integration

SECRET_COLUMNS = {
    "credentials_ciphertext",
    "pending_credentials_ciphertext",
    "external_id_ciphertext",
}


def _fields(record: type) -> set[str]:
    return {f.name for f in dataclasses.fields(record)}


def _columns(model: type) -> set[str]:
    return {c.name for c in model.__table__.columns}  # type: ignore[attr-defined]


def test_an_integration_record_has_every_column_but_the_secret_ones():
    assert _fields(IntegrationInfo) == (_columns(Integration) - SECRET_COLUMNS) | {"uses_key"}
    assert _columns(Integration) >= SECRET_COLUMNS  # the names above are still the model's


def test_an_audit_entry_has_every_column_of_the_event():
    assert _fields(AuditEntry) == _columns(AuditEvent)
