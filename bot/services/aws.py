"""boto3 clients per integration: from its decrypted key pair, or by assuming its role."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from storage.crypto import SecretBox
from storage.models import Integration

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sts import STSClient

# Throttling and 5xx are retried by botocore's standard mode; everything else surfaces.
RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=30,
    user_agent_extra="roleup-aws",
)
SESSION_NAME = "roleup"


class AwsClients:
    """Builds IAM and STS clients; honours AWS_ENDPOINT_URL (boto3 reads it itself too)."""

    def __init__(self, endpoint_url: str | None = None, region: str = "us-east-1") -> None:
        self.endpoint_url = endpoint_url
        self.region = region

    def _client(self, service: str, **credentials: Any) -> Any:
        session = boto3.session.Session(region_name=self.region, **credentials)
        kwargs: dict[str, Any] = {"config": RETRY_CONFIG}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        return session.client(service, **kwargs)  # type: ignore[call-overload]

    def iam_with_key(self, access_key_id: str, secret_access_key: str) -> IAMClient:
        return self._client(
            "iam", aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key
        )

    def sts_with_key(self, access_key_id: str, secret_access_key: str) -> STSClient:
        return self._client(
            "sts", aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key
        )

    def assume_role(self, role_arn: str, external_id: str | None) -> dict[str, str]:
        """Temporary credentials for the role, from the server's own credentials."""
        sts = self._client("sts")
        kwargs: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": SESSION_NAME}
        if external_id:
            kwargs["ExternalId"] = external_id
        creds = sts.assume_role(**kwargs)["Credentials"]
        return {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }

    def credentials_for(self, integration: Integration, box: SecretBox) -> dict[str, str]:
        if integration.credentials_ciphertext:
            pair = json.loads(
                box.decrypt(
                    integration.credentials_ciphertext,
                    what=f"the key of integration {integration.name}",
                )
            )
            return {
                "aws_access_key_id": pair["access_key_id"],
                "aws_secret_access_key": pair["secret_access_key"],
            }
        if integration.role_arn:
            external_id = None
            if integration.external_id_ciphertext:
                external_id = box.decrypt(
                    integration.external_id_ciphertext,
                    what=f"the external id of integration {integration.name}",
                )
            return self.assume_role(integration.role_arn, external_id)
        raise ValueError(f"integration {integration.name} has neither a key nor a role")

    def iam_for(self, integration: Integration, box: SecretBox) -> IAMClient:
        return self._client("iam", **self.credentials_for(integration, box))

    def sts_for(self, integration: Integration, box: SecretBox) -> STSClient:
        return self._client("sts", **self.credentials_for(integration, box))


def seal_key_pair(box: SecretBox, access_key_id: str, secret_access_key: str) -> str:
    return box.encrypt(
        json.dumps({"access_key_id": access_key_id, "secret_access_key": secret_access_key})
    )


def key_hint(access_key_id: str) -> str:
    """What may be shown of an access key id: its first four and last four characters."""
    return f"{access_key_id[:4]}…{access_key_id[-4:]}" if len(access_key_id) > 8 else "…"
