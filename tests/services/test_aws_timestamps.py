"""AWS timestamps are read with `datetime.fromisoformat`, to the same values botocore's own
(much slower) parser gives, whatever the format."""

from __future__ import annotations

import boto3
import pytest
from botocore.utils import parse_timestamp as botocore_timestamp

from bot.services.aws import AwsClients, parse_timestamp


@pytest.mark.parametrize(
    "value",
    [
        "2026-05-01T12:00:00Z",
        "2026-05-01T12:00:00.123Z",
        "2026-05-01T12:00:00.123456789Z",
        "2026-05-01T12:00:00+02:00",
        "2026-05-01T12:00:00.374000+00:00",
        "2026-05-01T12:00:00",  # no zone: botocore decides
        "1777636800",  # epoch seconds
        "Fri, 01 May 2026 12:00:00 GMT",  # an HTTP date
    ],
)
def test_a_timestamp_reads_as_botocore_reads_it(value):
    ours, theirs = parse_timestamp(value), botocore_timestamp(value)
    assert ours == theirs
    assert ours.utcoffset() == theirs.utcoffset()


def test_garbage_is_refused_as_botocore_refuses_it():
    with pytest.raises(ValueError):
        botocore_timestamp("not a date")
    with pytest.raises(ValueError):
        parse_timestamp("not a date")


def test_the_clients_read_answers_with_it(iam):
    iam.create_user(UserName="alice", Path="/staff/")
    ours = AwsClients()._client("iam")

    # The endpoint builds the parser of each answer from the session's factory.
    parser = ours._endpoint._response_parser_factory.create_parser("query")
    assert parser._timestamp_parser is parse_timestamp
    user = ours.get_user(UserName="alice")["User"]
    plain = boto3.client("iam", region_name="us-east-1").get_user(UserName="alice")["User"]
    assert user["CreateDate"] == plain["CreateDate"]
    assert user["CreateDate"].utcoffset() is not None
