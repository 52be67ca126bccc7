"""An IAM user with one of everything DeleteUser wants removed first, and what is left of one."""

from __future__ import annotations

import contextlib
import json

from cryptography.hazmat.primitives import serialization

from tests.support.certificates import self_signed

SSH_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDvxQ0nVnYxq0v6bGq7pQfPpn8mF1F7m9s3c0y3pGmXr test@example"
)


POLICY_DOC = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}],
    }
)


def certificate_pem() -> str:
    cert, _ = self_signed("bob")
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def furnish_user(iam, name: str = "bob", path: str = "/") -> None:
    """A user with one of everything IAM wants removed before DeleteUser."""
    iam.create_user(UserName=name, Path=path)
    iam.create_login_profile(UserName=name, Password="Xx-12345678!")
    iam.create_access_key(UserName=name)
    iam.create_access_key(UserName=name)
    iam.upload_signing_certificate(UserName=name, CertificateBody=certificate_pem())
    iam.upload_ssh_public_key(UserName=name, SSHPublicKeyBody=SSH_KEY)
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"{name}-phone")[
        "VirtualMFADevice"
    ]["SerialNumber"]
    iam.enable_mfa_device(
        UserName=name,
        SerialNumber=serial,
        AuthenticationCode1="123456",
        AuthenticationCode2="654321",
    )
    iam.put_user_policy(UserName=name, PolicyName="extra", PolicyDocument=POLICY_DOC)
    arn = iam.create_policy(PolicyName=f"{name}-s3", PolicyDocument=POLICY_DOC)["Policy"]["Arn"]
    iam.attach_user_policy(UserName=name, PolicyArn=arn)
    for group in ("developers", "readers"):
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_group(GroupName=group)
        iam.add_user_to_group(UserName=name, GroupName=group)


def leftovers(iam, name: str) -> dict[str, list]:
    return {
        "keys": iam.list_access_keys(UserName=name)["AccessKeyMetadata"],
        "certs": iam.list_signing_certificates(UserName=name)["Certificates"],
        "ssh": iam.list_ssh_public_keys(UserName=name)["SSHPublicKeys"],
        "mfa": iam.list_mfa_devices(UserName=name)["MFADevices"],
        "inline": iam.list_user_policies(UserName=name)["PolicyNames"],
        "attached": iam.list_attached_user_policies(UserName=name)["AttachedPolicies"],
        "groups": iam.list_groups_for_user(UserName=name)["Groups"],
    }


def gone(iam, name: str) -> bool:
    try:
        iam.get_user(UserName=name)
    except iam.exceptions.NoSuchEntityException:
        return True
    return False
