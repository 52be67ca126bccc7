"""Reading a submitted view's state safely: missing or malformed fields read as empty.

A view_submission payload is user-controlled; nothing here raises on odd shapes, except
`row_id`, whose refusal is the user's message.
"""

from __future__ import annotations

from typing import Any

from bot.services.errors import InvalidInput

OUT_OF_DATE = "This form is out of date: use the button again."


def row_id(view: Any, *, field: str | None = None) -> int:
    """The id of the row a modal was opened for (a grant, an expiry, a review item), kept in
    its private_metadata; InvalidInput (shown by `field`) for anything but a small number."""
    raw = view.get("private_metadata") if isinstance(view, dict) else None
    if not isinstance(raw, str) or not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise InvalidInput(OUT_OF_DATE, field=field)
    return int(raw)


class ViewState:
    def __init__(self, view: Any) -> None:
        values = view.get("state", {}).get("values", {}) if isinstance(view, dict) else {}
        self.values: dict[str, Any] = values if isinstance(values, dict) else {}

    def _element(self, block_id: str, action_id: str) -> dict[str, Any]:
        block = self.values.get(block_id)
        element = block.get(action_id) if isinstance(block, dict) else None
        return element if isinstance(element, dict) else {}

    def text(self, block_id: str, action_id: str) -> str:
        """A plain_text_input / number_input value, stripped ('' when empty)."""
        value = self._element(block_id, action_id).get("value")
        return value.strip() if isinstance(value, str) else ""

    def raw_text(self, block_id: str, action_id: str) -> str:
        """Unstripped: passwords keep their spaces."""
        value = self._element(block_id, action_id).get("value")
        return value if isinstance(value, str) else ""

    def selected(self, block_id: str, action_id: str) -> str | None:
        option = self._element(block_id, action_id).get("selected_option")
        value = option.get("value") if isinstance(option, dict) else None
        return value if isinstance(value, str) else None

    def selected_many(self, block_id: str, action_id: str) -> list[str]:
        chosen = self._element(block_id, action_id).get("selected_options")
        if not isinstance(chosen, list):
            return []
        out = [o.get("value") for o in chosen if isinstance(o, dict)]
        return list(dict.fromkeys(v for v in out if isinstance(v, str) and v))

    def user(self, block_id: str, action_id: str) -> str | None:
        value = self._element(block_id, action_id).get("selected_user")
        return value if isinstance(value, str) and value else None

    def users(self, block_id: str, action_id: str) -> list[str]:
        value = self._element(block_id, action_id).get("selected_users")
        if not isinstance(value, list):
            return []
        return list(dict.fromkeys(v for v in value if isinstance(v, str) and v))

    def conversation(self, block_id: str, action_id: str) -> str | None:
        element = self._element(block_id, action_id)
        value = element.get("selected_conversation") or element.get("selected_channel")
        return value if isinstance(value, str) and value else None

    def date_time(self, block_id: str, action_id: str) -> int | None:
        """A datetimepicker's choice (seconds since the epoch), None when unset or odd."""
        value = self._element(block_id, action_id).get("selected_date_time")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def date(self, block_id: str, action_id: str) -> str | None:
        """A datepicker's choice as sent (YYYY-MM-DD), None when unset; checked by the caller."""
        value = self._element(block_id, action_id).get("selected_date")
        return value[:32] if isinstance(value, str) and value else None
