"""Helpers for approval flows through the real app: integrations in the store, signed clicks."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from functools import partial
from typing import Any

from botocore.exceptions import ClientError
from sqlalchemy import select

from storage.models import Account, AuditEvent
from tests.support import seed, waiting

APPROVERS = ["UAPPROVER", "UAPPROVER2"]
# How long to wait for work the app does after an ack: generous, for a machine under load
# (a bound on waiting, not an assertion on speed).
PATIENCE = 60.0


# An integration row with a sealed key (as `integrations add` stores it) and two approvers.
add_integration = partial(
    seed.add_integration, approvers=APPROVERS, key=("AKIATESTTESTTEST", "x" * 40)
)


def removal_request(core: Any) -> str:
    """The id of a request to remove a new integration (no AWS call), waiting for an approver."""
    from tests.support.requests import submit_request

    integration = add_integration(core)
    kind = "remove_integration"
    return submit_request(
        core, kind=kind, integration_id=integration, requester="UADMIN", payload={}
    ).id


def offboarding(aws: Any, core: Any, name: str) -> tuple[int, str]:
    """A new integration (two approvers), IAM user `name` on it (see make_user), and the
    manager's request to offboard them, waiting: (the integration's id, the request's id)."""
    from bot.services.offboard_requests import request_offboard, targets_by_username

    integration_id = add_integration(core)
    make_user(aws, core, integration_id, name)
    targets = targets_by_username(core, name)
    asked = request_offboard(core, requester="UMANAGER", targets=targets, asked_for=name)
    return integration_id, asked.id


def click(slack: Any, action_id: str, value: str, *, user: str, channel="CAPPROVALS", retry=0):
    """A really signed block_actions payload, as Slack sends when a button is clicked (the
    same click each time: Slack's `retry`th retry of it says so in X-Slack-Retry-Num)."""
    payload = {
        "type": "block_actions",
        "team": {"id": "T0001", "domain": "roleup-test"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy-unused",
        "trigger_id": "333.444.trigger",
        "container": {"type": "message", "message_ts": "1.000001", "channel_id": channel},
        "channel": {"id": channel, "name": "approvals"},
        "message": {"type": "message", "ts": "1.000001", "text": "request"},
        "response_url": f"{slack.response_url_base}click-{user}",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "approval_actions",
                "value": value,
                "action_ts": "1.2",
            }
        ],
    }
    headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    response = slack.interact(payload, headers=headers if retry else None)
    assert response.status_code == 200, response.text
    return response


def wait_for(
    slack_api: Any,
    method: str,
    count: int = 1,
    where: Callable[[Any], bool] | None = None,
) -> list[Any]:
    """slack_api.wait_for with this module's patience."""
    return list(slack_api.wait_for(method, count=count, timeout=PATIENCE, where=where))


def buttons(call: Any) -> dict[str, dict[str, Any]]:
    """The buttons of a posted message, by label."""
    found = {}
    for block in call.params.get("blocks") or []:
        for element in block.get("elements", []):
            if element.get("type") == "button":
                found[element["text"]["text"]] = element
    return found


def message_text(call: Any) -> str:
    return json.dumps(call.params.get("blocks") or []) + str(call.params.get("text", ""))


def audit_actions(core: Any, request_id: str) -> list[str]:
    with core.sessions() as s:
        query = select(AuditEvent.action).where(AuditEvent.request_id == request_id)
        return list(s.scalars(query.order_by(AuditEvent.id)))


def ephemeral_to(slack_api: Any, user: str) -> list[str]:
    return [
        str(c.params.get("text", ""))
        for c in slack_api.calls_to(f"response_url:/respond/click-{user}")
    ]


# Work after an ack runs in the app's worker threads: poll often.
wait_until = partial(waiting.wait_until, every=0.02)


# --- IAM users in a moto server, mirrored in the store as a sync would ---------------------
def make_user(aws, core, integration_id, name, *, path="/", slack_user=None) -> str:
    """An IAM user with a password, a key, a group and a policy — and its row in the store."""
    aws.create_user(UserName=name, Path=path)
    aws.create_login_profile(UserName=name, Password="Sup3r-Secret-Pass!")
    key = aws.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    with contextlib.suppress(ClientError):
        aws.create_group(GroupName="devs")
    with contextlib.suppress(ClientError):
        aws.create_policy(PolicyName="ReadS3", PolicyDocument=DOC)
    aws.add_user_to_group(GroupName="devs", UserName=name)
    aws.attach_user_policy(UserName=name, PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/ReadS3")
    aws.put_user_policy(UserName=name, PolicyName="inline-extra", PolicyDocument=DOC)
    with core.sessions.begin() as s:
        s.add(
            Account(
                integration_id=integration_id, user_name=name, path=path, slack_user_id=slack_user
            )
        )
    return key


ACCOUNT = "123456789012"  # moto's account
DOC = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
    }
)


def user_exists(aws, name) -> bool:
    try:
        aws.get_user(UserName=name)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchEntity"
        return False
    return True


def approval_post(slack_api):
    (post,) = wait_for(
        slack_api, "chat.postMessage", where=lambda c: c.params["channel"] == "CAPPROVALS"
    )
    return post


def request_id_of(post) -> str:
    return buttons(post)["Approve"]["value"]
