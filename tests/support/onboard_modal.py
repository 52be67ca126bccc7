"""The /onboard modal opened and filled in as a manager does."""

from __future__ import annotations

from tests.support.modal import one_user, options, text
from tests.support.seed import MANAGER

TYPED = "Typed-Secret-Passw0rd!"


CHECKBOX = "password_mode"


POLICY = "arn:aws:iam::123456789012:policy/ReadSome"


def open_modal(slack, slack_api, user_id=MANAGER):
    response = slack.command("/onboard", "", user_id=user_id)
    assert response.status_code == 200
    opened = slack_api.wait_for("views.open")[0]
    assert opened.params["trigger_id"] == "111.222.trigger"
    return slack_api.wait_for("views.update")[0].params["view"]


def fill(prod, username, *, password=TYPED, generate=False, groups=("developers",)):
    values = {
        "integration": {
            "onboard_integration": {
                "type": "static_select",
                "selected_option": {"value": str(prod)},
            }
        },
        "username": {"value": text(username)},
        "password": {"value": text(password)},
        "groups": {"value": options(*groups)},
        "policies": {"onboard_policies": options(POLICY)},
        "slack_user": {"value": one_user("UNEWBIE")},
    }
    if generate:
        values[CHECKBOX] = {"value": options("generate")}
    return values
