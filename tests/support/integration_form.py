"""The `/roleup integration add` form, opened by the admin and submitted with typed keys."""

from __future__ import annotations

from typing import Any

from tests.support.held_calls import PATIENCE
from tests.support.modal import submission, text, users
from tests.support.seed import ADMIN, MANAGER


def added(slack, slack_api, name: str, secret_key: str) -> dict[str, Any]:
    """The submission of a new integration `name` whose secret access key is `secret_key`."""
    assert slack.command("/roleup", "integration add", user_id=ADMIN).status_code == 200
    (opened,) = slack_api.wait_for("views.open", timeout=PATIENCE)
    values = {
        "name": {"value": text(name)},
        "access_key_id": {"value": text("AKIAIOSFODNN7EXAMPLE")},
        "secret_access_key": {"value": text(secret_key)},
        "path_prefix": {"value": text("/")},
        "managers": {"value": users(MANAGER)},
    }
    return submission(opened.params["view"], values, ADMIN)
