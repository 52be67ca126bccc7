"""No plaintext secret in the store, the logs or an error text; a wrong key is named clearly.

Integrations are added the two ways an admin can outside Slack (the `roleup` process and the
service), with a key pair that really exists in a moto IAM, so whatever credential check and
first sync `add` runs also handle the secret. Then every column of every row, every captured
log line and every error text is scanned for it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import traceback
from typing import Any

import pytest

from bot.app import create_core
from bot.services import integrations
from bot.services.errors import RoleUpError
from bot.services.integrations import IntegrationSpec
from bot.settings import Settings
from storage.crypto import SecretBox, SecretUnreadable, generate_key
from tests.support.config import TEST_KEY
from tests.support.secrets import rows_containing

EXTERNAL_ID = "ext-id-f00d-cafe-1234"


def moto_key_pair(aws: Any, user: str) -> tuple[str, str]:
    """A real access key of a real (moto) IAM user, as an admin would paste it."""
    aws.create_user(UserName=user)
    key = aws.create_access_key(UserName=user)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def roleup_process(
    *args: str, env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def process_env(database_url: str, moto_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ROLEUP_"))}
    env.update(
        DATABASE_URL=database_url,
        ROLEUP_ENCRYPTION_KEYS=TEST_KEY,
        AWS_ENDPOINT_URL=moto_url,
        PYTHONUNBUFFERED="1",
    )
    return env


def error_texts(error: BaseException) -> str:
    """Everything an error could show: its message, repr and whole traceback."""
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


def errors_while_handling(core: Any, secret: str, key_id: str, settings: Settings) -> list[str]:
    """Provoke every error that happens with the secret in hand; return their texts."""
    texts: list[str] = []
    attempts = [
        IntegrationSpec(name="cli-prod", access_key_id=key_id, secret_access_key=secret),
        IntegrationSpec(name="Bad Name", access_key_id=key_id, secret_access_key=secret),
        IntegrationSpec(name="x", access_key_id=key_id, secret_access_key=secret + " tail"),
        IntegrationSpec(name="x", access_key_id="lower", secret_access_key=secret),
        IntegrationSpec(name="x", secret_access_key=secret, role_arn="arn:aws:iam::1:role/R"),
    ]
    for spec in attempts:
        assert secret not in repr(spec)
        with pytest.raises(RoleUpError) as info:
            integrations.add_integration(core, spec, actor="UADMIN", validate=False)
        texts.append(error_texts(info.value))
    stranger = create_core(dataclasses.replace(settings, encryption_keys=(generate_key(),)))
    try:
        with stranger.sessions() as session:
            stored = integrations.get_integration(session, "cli-prod")
        with pytest.raises(SecretUnreadable) as unreadable:
            stranger.aws.iam_for(stored, stranger.require_box())
        assert "integration cli-prod" in str(unreadable.value)
        texts.append(error_texts(unreadable.value))
    finally:
        stranger.engine.dispose()
    return texts


def test_no_plaintext_secret_in_the_store_logs_or_errors(
    settings, process_env, moto_url, aws, caplog, engine
):
    cli_key_id, cli_secret = moto_key_pair(aws, "roleup-cli")
    svc_key_id, svc_secret = moto_key_pair(aws, "roleup-svc")
    # From here on (not while the test itself makes the keys) everything is captured.
    caplog.set_level(logging.DEBUG)

    added = roleup_process(
        "-v", "integrations", "add", "cli-prod", "--access-key-id", cli_key_id,
        env=process_env, stdin=cli_secret + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    # Validated with AWS (moto) and synced once before the command returned.
    assert " last sync " in added.stdout and added.stdout.rstrip().endswith(" ok)")
    role = roleup_process(
        "-v", "integrations", "add", "cli-role", "--role-arn",
        "arn:aws:iam::123456789012:role/RoleUp", "--external-id", EXTERNAL_ID, "--no-validate",
        env=process_env,
    )  # fmt: skip
    assert role.returncode == 0, role.stderr
    listed = roleup_process("-v", "integrations", "list", "--json", env=process_env)
    rotated = roleup_process("-v", "rotate-keys", env=process_env)
    assert (listed.returncode, rotated.returncode) == (0, 0)

    core = create_core(dataclasses.replace(settings, aws_endpoint_url=moto_url))
    try:
        integrations.add_integration(
            core,
            IntegrationSpec(
                name="svc-prod", access_key_id=svc_key_id, secret_access_key=svc_secret
            ),
            actor="UADMIN",
        )
        texts = errors_while_handling(core, cli_secret, cli_key_id, settings)
        names = {i.name for i in integrations.list_integrations(core)}
    finally:
        core.engine.dispose()

    outputs = [p.stdout + p.stderr for p in (added, role, listed, rotated)]
    for secret in (cli_secret, svc_secret, EXTERNAL_ID):
        assert rows_containing(engine, secret) == [], secret
        assert secret not in caplog.text
        for output in outputs:
            assert secret not in output
    for text in texts:
        assert cli_secret not in text
    # The scan is not vacuous: the integrations and their sealed secrets are there.
    assert names == {"cli-prod", "cli-role", "svc-prod"}
    # Even the full access key id is only kept inside the ciphertext, next to its secret.
    assert rows_containing(engine, cli_key_id) == []
    assert "integrations.credentials_ciphertext" in rows_containing(engine, "gAAAAA")


def test_a_wrong_key_is_named_without_a_traceback(process_env):
    stdin = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    added = roleup_process(
        "integrations", "add", "prod", "--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--no-validate",
        env=process_env, stdin=stdin,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    wrong = dict(process_env, ROLEUP_ENCRYPTION_KEYS=generate_key())
    result = roleup_process("-v", "rotate-keys", env=wrong)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "roleup: cannot re-encrypt the key of integration prod: none of ROLEUP_ENCRYPTION_KEYS fits"
    )
    assert stdin.strip() not in result.stderr


def test_a_wrong_key_when_using_an_integration_names_it(core, settings):
    integrations.add_integration(
        core,
        IntegrationSpec(
            name="prod",
            access_key_id="AKIAIOSFODNN7EXAMPLE",
            secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        actor="U",
        validate=False,
    )
    with core.sessions() as session:
        stored = integrations.get_integration(session, "prod")
    with pytest.raises(SecretUnreadable) as info:
        core.aws.credentials_for(stored, SecretBox([generate_key()]))
    assert str(info.value) == (
        "cannot decrypt the key of integration prod: none of ROLEUP_ENCRYPTION_KEYS fits "
        "(was a key removed before `roleup rotate-keys`?)"
    )
