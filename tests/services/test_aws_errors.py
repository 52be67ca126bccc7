"""botocore failures become domain errors with safe messages; ConcurrentModification is retried."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from botocore.stub import Stubber

from bot.services import aws
from bot.services.aws import AwsClients, call, translate
from bot.services.errors import (
    AwsAccessDenied,
    AwsConflict,
    AwsError,
    AwsUnavailable,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    PasswordPolicyViolation,
    Throttled,
    UserNotFound,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def client_error(code: str, status: int = 400, operation: str = "CreateUser") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"details mention {SECRET}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


@pytest.mark.parametrize(
    "code, status, expected",
    [
        ("InvalidClientTokenId", 403, InvalidCredentials),
        ("SignatureDoesNotMatch", 403, InvalidCredentials),
        ("ExpiredToken", 403, InvalidCredentials),
        ("AccessDenied", 403, AwsAccessDenied),
        ("Throttling", 400, Throttled),
        ("ServiceFailure", 500, AwsUnavailable),
        ("SomethingNew", 503, AwsUnavailable),
        ("NoSuchEntity", 404, NotFound),
        ("PasswordPolicyViolation", 400, PasswordPolicyViolation),
        ("InvalidInput", 400, InvalidInput),
        ("MalformedPolicyDocument", 400, InvalidInput),
        ("DeleteConflict", 409, AwsConflict),
        ("LimitExceeded", 409, AwsConflict),
        ("SomethingNew", 400, AwsError),
    ],
)
def test_client_errors_map_to_domain_errors_without_aws_text(code, status, expected):
    error = translate(client_error(code, status), "create the IAM user bob")
    assert type(error) is expected
    assert str(error).startswith("Could not create the IAM user bob")
    assert SECRET not in str(error)
    assert "details mention" not in str(error)


def test_access_denied_names_the_missing_permission():
    error = translate(client_error("AccessDenied", 403, "DeleteUser"), "delete bob")
    assert "iam:DeleteUser" in str(error)


def test_overrides_pick_the_error_for_the_context():
    error = translate(
        client_error("NoSuchEntity"), "look up bob", {"NoSuchEntity": lambda: UserNotFound("x")}
    )
    assert isinstance(error, UserNotFound)


def test_transport_failures_are_unavailable_and_missing_credentials_are_invalid():
    unreachable = EndpointConnectionError(endpoint_url="https://iam.amazonaws.com/")
    assert isinstance(translate(unreachable, "list users"), AwsUnavailable)
    assert isinstance(translate(NoCredentialsError(), "list users"), InvalidCredentials)


def test_retries_are_standard_and_bounded():
    client = AwsClients().iam_with_key("AKIAX", SECRET)
    # max_attempts in a Config counts retries: the first try plus five.
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 6}


@pytest.fixture
def stubbed():
    client = boto3.client("iam", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber


def test_concurrent_modification_is_retried_until_it_clears(stubbed, monkeypatch):
    monkeypatch.setattr(aws, "CONCURRENT_BACKOFF_SECONDS", 0.0)
    client, stubber = stubbed
    for _ in range(2):
        stubber.add_client_error("tag_user", "ConcurrentModification", http_status_code=409)
    stubber.add_response("tag_user", {}, {"UserName": "bob", "Tags": []})
    call(client.tag_user, "tag bob", UserName="bob", Tags=[])
    stubber.assert_no_pending_responses()


def test_concurrent_modification_gives_up_after_a_bounded_number_of_tries(stubbed, monkeypatch):
    monkeypatch.setattr(aws, "CONCURRENT_BACKOFF_SECONDS", 0.0)
    client, stubber = stubbed
    for _ in range(aws.CONCURRENT_ATTEMPTS):
        stubber.add_client_error("tag_user", "ConcurrentModification", http_status_code=409)
    with pytest.raises(AwsConflict):
        call(client.tag_user, "tag bob", UserName="bob", Tags=[])
    stubber.assert_no_pending_responses()


def test_other_errors_are_not_retried(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("tag_user", "AccessDenied", http_status_code=403)
    with pytest.raises(AwsAccessDenied):
        call(client.tag_user, "tag bob", UserName="bob", Tags=[])
    stubber.assert_no_pending_responses()


def test_an_unreachable_endpoint_is_aws_unavailable():
    client = AwsClients(endpoint_url="http://127.0.0.1:9").iam_with_key("AKIAX", SECRET)
    with pytest.raises(AwsUnavailable) as caught:
        call(client.list_users, "list users")
    assert SECRET not in str(caught.value)


def test_clients_share_one_session_but_keep_their_own_credentials(iam):
    pairs = []
    for name in ("first", "second"):
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        pairs.append((key["AccessKeyId"], key["SecretAccessKey"]))
    clients = AwsClients()
    arns = [clients.sts_with_key(*pair).get_caller_identity()["Arn"] for pair in pairs]
    assert arns == [
        "arn:aws:iam::123456789012:user/first",
        "arn:aws:iam::123456789012:user/second",
    ]


def test_commands_arriving_together_at_a_start_share_one_new_client(iam, monkeypatch):
    """The first calls after a start, made at once on many threads, wait for the one shared
    client being made instead of each making its own (each loads the service's model)."""
    key = iam.create_access_key(UserName=iam.create_user(UserName="u")["User"]["UserName"])
    pair = (key["AccessKey"]["AccessKeyId"], key["AccessKey"]["SecretAccessKey"])
    clients = AwsClients()
    made: list[str] = []
    real = clients._new_client

    def slow_new_client(service, session, retries):
        made.append(service)
        time.sleep(0.2)  # as loading the model takes: the others arrive meanwhile
        return real(service, session, retries)

    monkeypatch.setattr(clients, "_new_client", slow_new_client)
    start = threading.Barrier(8)

    def caller_arn() -> str:
        start.wait()
        return str(clients.sts_with_key(*pair).get_caller_identity()["Arn"])

    with ThreadPoolExecutor(8) as pool:
        arns = list(pool.map(lambda _: caller_arn(), range(8)))
    assert arns == ["arn:aws:iam::123456789012:user/u"] * 8
    assert made == ["sts"]
