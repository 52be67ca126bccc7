"""Every service test runs with moto's IAM gaps filled (tests/conftest.py's `moto_gaps`), and
its botocore sessions share one loader of AWS's service models; `account` is the IAM account
the sync tests read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.aws_calls import SimulatedPermissions
from tests.support.iam_users import POLICY_DOC


@pytest.fixture(autouse=True)
def _moto_gaps_filled(moto_gaps: SimulatedPermissions) -> SimulatedPermissions:
    return moto_gaps


@pytest.fixture(scope="session", autouse=True)
def _one_botocore_loader() -> Iterator[None]:
    """Every botocore session of these tests reads AWS's service models through one loader. The
    bot makes one session per process (bot.services.aws.AwsClients), but a service test builds a
    new core, and so new sessions, each time: without this each test parsed the IAM and STS
    models from disk again, most of its set-up. Kept to this folder: with the app's listener
    threads and the moto server of tests/e2e, one test there (the deny-all fallback of
    test_approval_integrity.py) no longer saw AWSDenyAll attached in time."""
    import botocore.loaders
    import botocore.session

    shared: dict[str | None, botocore.loaders.Loader] = {}
    original = botocore.session.create_loader

    def one_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
        if search_path_string not in shared:
            shared[search_path_string] = original(search_path_string)
        return shared[search_path_string]

    botocore.session.create_loader = one_loader
    yield
    botocore.session.create_loader = original


@pytest.fixture
def account(iam):
    """Staff inside /staff/, a contractor outside it, groups with policies, a Slack link tag."""
    arn = iam.create_policy(PolicyName="s3-read", PolicyDocument=POLICY_DOC)["Policy"]["Arn"]
    for group in ("developers", "readers"):
        iam.create_group(GroupName=group)
    iam.attach_group_policy(GroupName="readers", PolicyArn=arn)
    iam.create_user(
        UserName="alice", Path="/staff/", Tags=[{"Key": "roleup:slack-user", "Value": "U0ALICE"}]
    )
    iam.add_user_to_group(UserName="alice", GroupName="developers")
    iam.attach_user_policy(UserName="alice", PolicyArn=arn)
    iam.put_user_policy(UserName="alice", PolicyName="extra", PolicyDocument=POLICY_DOC)
    iam.create_user(UserName="bob", Path="/staff/ops/")
    iam.add_user_to_group(UserName="bob", GroupName="readers")
    iam.create_user(UserName="carol", Path="/contractors/")
    iam.add_user_to_group(UserName="carol", GroupName="readers")
    return {"policy_arn": arn}
