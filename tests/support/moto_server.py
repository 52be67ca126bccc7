"""The app on the moto server over HTTP, as in production: a module marked `moto_server` gets
`settings` pointing AWS at it, and `aws` is IAM on that server as an administrator outside
RoleUp would see it. (The root conftest's `iam` is moto in-process instead.)"""

from __future__ import annotations

import dataclasses
from typing import Any

import boto3
import pytest

from bot.settings import Settings


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    if request.node.get_closest_marker("moto_server") is None:
        return settings
    moto_url: str = request.getfixturevalue("moto_url")
    return dataclasses.replace(settings, aws_endpoint_url=moto_url)


@pytest.fixture
def aws(moto_url: str) -> Any:
    """IAM on the moto server, as an administrator outside RoleUp."""
    return boto3.client("iam", region_name="us-east-1", endpoint_url=moto_url)
