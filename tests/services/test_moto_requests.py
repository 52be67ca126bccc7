"""moto's mock as the service tests start it (tests/services/conftest.py registers one pattern a
method with `requests`' mock instead of each service's): a `requests` call to AWS still gets
moto's answer from the same state the boto3 clients see."""

from __future__ import annotations

import requests


def test_a_requests_call_to_aws_is_answered_by_moto(iam):
    iam.create_user(UserName="bob")
    answer = requests.post(
        "https://iam.amazonaws.com/",
        data={"Action": "ListUsers", "Version": "2010-05-08"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert "<UserName>bob</UserName>" in answer.text
