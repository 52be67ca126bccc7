"""`roleup integrations list|add|remove` and `roleup rotate-keys`, as an operator runs them."""

from __future__ import annotations

import json

import pytest

from bot.app import create_core
from bot.services import integrations
from bot.settings import Settings
from storage.crypto import generate_key
from tests.support.cli_integrations import KEY_ID, SECRET, add_key, rows_containing_secret, stored
from tests.support.config import TEST_KEY


def test_add_reads_the_secret_from_stdin_and_stores_it_sealed(cli, database_url, caplog):
    result = add_key(
        cli, "prod", "--read-only", "--path-prefix", "/eng/", "--managers", "U1,S2",
        "--approvers", "U3", "--approvals-channel", "C9", "--sync-interval", "30",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.out.startswith("added integration prod")
    integration = stored(database_url, "prod")
    assert integration.read_only and integration.path_prefix == "/eng/"
    assert integration.managers == ["U1", "S2"] and integration.approvers == ["U3"]
    assert integration.approvals_channel == "C9" and integration.sync_interval_minutes == 30
    assert integration.created_by.startswith("cli:")
    assert rows_containing_secret(database_url) == []
    assert SECRET not in result.out + result.err + caplog.text


def test_add_stores_the_reason_and_quorum_settings(cli, database_url):
    assert add_key(cli, "prod").code == 0
    plain = stored(database_url, "prod")
    assert (plain.require_reason, plain.approvals_required) == (False, 1)
    result = add_key(cli, "strict", "--require-reason", "--approvals-required", "2")
    assert result.code == 0, result.err
    strict = stored(database_url, "strict")
    assert (strict.require_reason, strict.approvals_required) == (True, 2)
    listed = [json.loads(line) for line in cli("integrations", "list", "--json").out.splitlines()]
    assert {i["name"]: i["approvals_required"] for i in listed} == {"prod": 1, "strict": 2}


def test_add_sets_the_break_glass_list(cli, database_url):
    result = add_key(cli, "prod", "--approvers", "U3", "--breakglass", "U5, S6,U5")
    assert result.code == 0, result.err
    assert stored(database_url, "prod").breakglass == ["U5", "S6"]
    refused = add_key(cli, "prod2", "--breakglass", "alice")
    assert refused.code == 1 and "Breakglass must be Slack user" in refused.err


def test_list_prints_one_integration_a_line(cli):
    assert add_key(cli, "prod").code == 0
    role = "arn:aws:iam::123456789012:role/RoleUp"
    result = cli("integrations", "add", "staging", "--role-arn", role, "--no-validate")
    assert result.code == 0, result.err
    listed = cli("integrations", "list")
    assert listed.code == 0
    assert listed.out.splitlines() == [
        "prod  read-write  /  key AKIA…MPLE  never synced",
        f"staging  read-write  /  role {role}  never synced",
    ]


def test_list_json_gives_one_object_a_line_without_secrets(cli):
    add_key(cli, "prod")
    result = cli("integrations", "list", "--json")
    assert result.code == 0
    (line,) = result.out.splitlines()
    data = json.loads(line)
    assert data["name"] == "prod" and data["access_key_hint"] == "AKIA…MPLE"
    assert data["mode"] == "read-write" and data["last_sync_at"] is None
    assert SECRET not in result.out and "ciphertext" not in result.out


def test_list_with_nothing_says_how_to_add_one(cli):
    result = cli("integrations", "list")
    assert (result.code, result.out) == (0, "")
    assert "roleup integrations add" in result.err


@pytest.mark.parametrize(
    ("argv", "stdin", "words"),
    [
        (["prod", "--access-key-id", KEY_ID], "\n", "the secret access key is empty"),
        (["prod", "--access-key-id", KEY_ID], "", "the secret access key is empty"),
        (["Bad Name", "--access-key-id", KEY_ID], SECRET, "1 to 64 characters of a-z"),
        (["prod", "--access-key-id", KEY_ID, "--path-prefix", "eng"], SECRET, "start and end"),
        (["prod", "--access-key-id", KEY_ID, "--external-id", "x1"], SECRET, "with --role-arn"),
        (["prod", "--role-arn", "arn:aws:iam::1:role/x"], "", "role ARN must look like"),
        (["prod", "--access-key-id", KEY_ID, "--managers", "alice"], SECRET, "Slack user"),
        (["prod", "--access-key-id", KEY_ID, "--sync-interval", "0"], SECRET, "1 to 1440"),
        (["prod", "--access-key-id", KEY_ID, "--approvals-required", "4"], SECRET, "1 to 3"),
        (["prod", "--access-key-id", KEY_ID, "--approvals-required", "0"], SECRET, "1 to 3"),
    ],
)
def test_bad_add_input_exits_1_with_one_line_and_saves_nothing(cli, argv, stdin, words):
    result = cli("integrations", "add", *argv, "--no-validate", stdin=stdin)
    assert result.code == 1
    assert result.out == ""
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert result.err.startswith("roleup: ") and words in result.err
    assert SECRET not in result.err
    assert cli("integrations", "list").out == ""


def test_the_secret_is_never_accepted_on_the_command_line(cli):
    with pytest.raises(SystemExit) as info:
        cli("integrations", "add", "prod", "--access-key-id", KEY_ID, "--secret-access-key", "x")
    assert info.value.code == 2


def test_a_taken_name_is_refused_clearly(cli):
    assert add_key(cli, "prod").code == 0
    again = add_key(cli, "prod")
    assert again.code == 1
    assert "an integration named prod already exists" in again.err.lower()


def test_add_needs_the_encryption_keys(cli, monkeypatch):
    monkeypatch.delenv("ROLEUP_ENCRYPTION_KEYS")
    result = add_key(cli, "prod")
    assert result.code == 1
    assert result.err.strip() == (
        "roleup: ROLEUP_ENCRYPTION_KEYS is required: comma-separated Fernet keys "
        "(make one with `roleup keygen`)"
    )


def test_remove_with_yes_deletes_it_and_an_unknown_name_is_clear(cli):
    add_key(cli, "prod")
    result = cli("integrations", "remove", "prod", "--yes")
    assert (result.code, result.out) == (0, "removed integration prod and all of its data\n")
    assert cli("integrations", "list").out == ""
    missing = cli("integrations", "remove", "prod", "--yes")
    assert missing.code == 1
    assert missing.err == "roleup: There is no integration named prod.\n"


def test_remove_without_a_terminal_needs_yes(cli):
    add_key(cli, "prod")
    result = cli("integrations", "remove", "prod")
    assert result.code == 1
    assert result.err == "roleup: not removing prod: pass --yes to remove without a terminal\n"
    assert cli("integrations", "list").out.startswith("prod")


def test_rotate_keys_reencrypts_with_the_first_key(cli, database_url, monkeypatch):
    add_key(cli, "prod")
    new = generate_key()
    monkeypatch.setenv("ROLEUP_ENCRYPTION_KEYS", f"{new},{TEST_KEY}")
    result = cli("rotate-keys")
    assert (result.code, result.out) == (0, "re-encrypted 1 secret with the first key\n")
    core = create_core(Settings(database_url=database_url, encryption_keys=(new,)))
    try:
        with core.sessions() as s:
            integration = integrations.get_integration(s, "prod")
        creds = core.aws.credentials_for(integration, core.require_box())
        assert creds["aws_secret_access_key"] == SECRET
    finally:
        core.engine.dispose()


def test_rotate_with_a_key_that_fits_nothing_names_the_integration(cli, monkeypatch):
    add_key(cli, "prod")
    monkeypatch.setenv("ROLEUP_ENCRYPTION_KEYS", generate_key())
    result = cli("rotate-keys")
    assert result.code == 1
    assert result.err.startswith("roleup: cannot re-encrypt the key of integration prod:")
    assert len(result.err.splitlines()) == 1
    assert "Traceback" not in result.err


def test_commands_on_a_store_without_the_schema_say_to_upgrade(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    result = cli("integrations", "list")
    assert result.code == 1
    assert result.err.startswith("roleup: the database sqlite:///")
    assert result.err.rstrip().endswith("has no RoleUp schema: run `roleup db upgrade`")
