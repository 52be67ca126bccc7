"""Reading a clicked button: shared by the grant, break-glass and account-expiry buttons (the
answer goes where bot.slack.errors.button_reply says)."""

from __future__ import annotations

from typing import Any


def grant_id_of(body: dict[str, Any]) -> int | None:
    value = str(((body.get("actions") or [{}])[0]).get("value") or "")
    return int(value) if value.isdigit() and len(value) <= 18 else None


def in_home(body: dict[str, Any]) -> bool:
    return (body.get("container") or {}).get("type") == "view"
