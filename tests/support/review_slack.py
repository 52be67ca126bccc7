"""Access reviews through Slack: prod on the moto server, its buttons, and the campaign's start."""

from __future__ import annotations

import dataclasses
import json

import boto3
import pytest
from sqlalchemy import select, update

from bot.services.sync import sync_integration
from storage.models import Account, ReviewItem
from tests.support.seed import add_integration

MANAGER, OTHER = "UMANAGER", "UMANAGER2"


@pytest.fixture
def settings(settings, moto_url):
    return dataclasses.replace(settings, aws_endpoint_url=moto_url)


@pytest.fixture
def iam(moto_url):
    return boto3.client("iam", region_name="us-east-1", endpoint_url=moto_url)


@pytest.fixture
def prod(roleup, iam):
    core = roleup.core
    integration_id = add_integration(core, managers=[MANAGER, OTHER])
    iam.create_group(GroupName="developers")
    for name in ("alice", "bob", "carol"):
        iam.create_user(UserName=name)
        iam.add_user_to_group(GroupName="developers", UserName=name)
    iam.create_login_profile(UserName="carol", Password="Xx-123456789-!!")
    sync_integration(core, integration_id, actor="test")
    with core.sessions.begin() as session:
        session.execute(
            update(Account).where(Account.user_name == "bob").values(slack_user_id=MANAGER)
        )
    return integration_id


def click(action_id: str, value: str, user_id: str, url: str, container: str = "view"):
    return {
        "type": "block_actions",
        "user": {"id": user_id},
        "team": {"id": "T0001"},
        "api_app_id": "A0001",
        "trigger_id": f"1.2.{action_id}.{value}.{user_id}",
        "response_url": url,
        "container": {"type": container},
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": f"review_item_{value}",
                "value": value,
                "action_ts": "1700000000.000100",
            }
        ],
    }


def as_dict(value):
    return json.loads(value) if isinstance(value, str) else value


def item_ids(roleup) -> dict[str, int]:
    with roleup.core.sessions() as session:
        return {i.user_name: i.id for i in session.scalars(select(ReviewItem)).all()}


def start(slack, slack_api) -> str:
    assert slack.command("/roleup", "review start prod 7", user_id=MANAGER).status_code == 200
    (reply,) = slack_api.wait_for("response_url:/respond/cmd")
    if "started" in reply.params["text"]:  # the reviewers' DMs follow the reply
        slack_api.wait_for(
            "chat.postMessage", where=lambda c: c.params["channel"] in (MANAGER, OTHER), count=2
        )
    return reply.params["text"]
