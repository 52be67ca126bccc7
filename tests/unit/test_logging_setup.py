"""Secrets are masked in every log record, whatever handler receives it."""

from __future__ import annotations

import io
import logging

import pytest

from bot.logging_setup import (
    MASK,
    RedactingFilter,
    SecretRegistry,
    SecretRegistryFull,
    forget_secret,
    install_redaction,
    redact,
    register_secret,
    registry,
    secret_in_flight,
)
from bot.services.invites import new_token
from storage.crypto import generate_key

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    "text",
    [
        f"aws_secret_access_key={AWS_SECRET}",
        f"AWS_SECRET_ACCESS_KEY = '{AWS_SECRET}'",
        f'{{"secret_access_key": "{AWS_SECRET}", "access_key_id": "AKIA1"}}',
        f'{{"SecretAccessKey": "{AWS_SECRET}"}}',
        f"<SecretAccessKey>{AWS_SECRET}</SecretAccessKey>",
        f"secret_key: {AWS_SECRET} and more",
    ],
)
def test_aws_secret_keys_after_their_labels_are_masked(text):
    masked = redact(text)
    assert AWS_SECRET not in masked
    assert MASK in masked


@pytest.mark.parametrize(
    "token",
    [
        "xoxb-1234-5678-abcdEFGH",
        "xoxp-1-2-3-abc",
        "xoxe-1-abcdef",
        "xapp-1-A0001-1234-deadbeef",
    ],
)
def test_slack_tokens_are_masked(token):
    masked = redact(f"calling with token={token} now")
    assert token not in masked
    assert token.split("-")[0] + "-" + MASK in masked


def test_fernet_keys_are_masked():
    key = generate_key()
    masked = redact(f"ROLEUP_ENCRYPTION_KEYS={key},{generate_key()}")
    assert key not in masked
    assert masked.count(MASK) == 2


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("password=Hunter2-long&user=alice", "&user=alice"),
        ("Action=CreateLoginProfile&Password=S3cret%21x&UserName=bob", "&UserName=bob"),
        ('{"password": "S3cret \\"quoted\\" x", "user": "alice"}', '"user": "alice"'),
        ("{'initial_password': 'S3cret!x', 'user': 'alice'}", "'user': 'alice'"),
        ("<Password>S3cret!x</Password>", "<Password>"),
    ],
)
def test_password_values_are_masked_and_the_rest_kept(text, kept):
    masked = redact(text)
    for secret in ("Hunter2-long", "S3cret"):
        assert secret not in masked
    assert kept in masked
    assert MASK in masked


def test_registered_secrets_are_masked_anywhere_until_forgotten():
    value = "Tr0ub4dor&3-registered"
    assert redact(f"free text {value}.") == f"free text {value}."
    register_secret(value)
    try:
        assert redact(f"free text {value}.") == f"free text {MASK}."
    finally:
        forget_secret(value)
    assert value in redact(value)


def test_a_secret_in_flight_is_masked_only_while_its_block_runs():
    value = "in-flight-Pa55word!"
    held = len(registry())
    with secret_in_flight(value):
        assert redact(f"leaked {value}") == f"leaked {MASK}"
        assert len(registry()) == held + 1
    assert len(registry()) == held
    assert redact(f"leaked {value}") == f"leaked {value}"


def test_a_value_held_by_two_requests_stays_masked_until_both_let_go():
    value = "same-password-Tw1ce"
    with secret_in_flight(value):
        with secret_in_flight(value):
            pass
        assert value not in redact(value)  # the first to finish does not unmask it
    assert redact(value) == value


def test_a_full_registry_refuses_new_values_and_keeps_every_held_one():
    bounded = SecretRegistry(limit=3)
    held = ["first-Secret1", "second-Secret2", "third-Secret3"]
    for value in held:
        bounded.add(value)
    with pytest.raises(SecretRegistryFull):
        bounded.add("fourth-Secret4")
    with pytest.raises(SecretRegistryFull):
        bounded.add_all(["fifth-Secret5", "first-Secret1"])  # all or none
    assert len(bounded) == 3 and bounded.peak == 3
    assert bounded.mask(" ".join(held)) == " ".join([MASK] * 3)  # nothing was evicted
    assert bounded.mask("fourth-Secret4") == "fourth-Secret4"
    bounded.add("first-Secret1")  # one already held is only counted again
    bounded.discard("third-Secret3")
    bounded.add("fourth-Secret4")  # room again once one is let go
    assert bounded.mask("fourth-Secret4 third-Secret3") == f"{MASK} third-Secret3"


def test_a_full_process_registry_stops_the_block_before_it_runs(monkeypatch):
    monkeypatch.setattr(registry(), "limit", len(registry()))
    ran = []
    with pytest.raises(SecretRegistryFull), secret_in_flight("no-room-Secret9"):
        ran.append(True)
    assert ran == []


def test_overlapping_and_adjacent_held_values_are_masked_whole():
    bounded = SecretRegistry()
    bounded.add_all(["abcdef-123", "def-123-xyz", "abcdef"])
    assert bounded.mask("[abcdef-123-xyz] abcdef!") == f"[{MASK}] {MASK}!"
    assert bounded.mask("nothing here") == "nothing here"


def test_invite_tokens_are_masked_by_their_shape_without_being_registered():
    token = new_token()
    held = len(registry())
    masked = redact(f'"GET /invite/{token} HTTP/1.1" 200 and {token}.')
    assert token not in masked
    assert masked == f'"GET /invite/{MASK} HTTP/1.1" 200 and {MASK}.'
    assert len(registry()) == held
    # A token with no digit is masked too, and a path to anything after /invite/.
    assert redact("x" * 21 + "Y" * 22) == MASK
    assert redact("GET /invite/not-a-token?x=1") == f"GET /invite/{MASK}?x=1"
    # Words and hashes of other lengths are left alone.
    readable = "a_snake_case_function_name_of_exactly_43_ch sha256=" + "ab12" * 16
    assert redact(readable) == readable


def test_very_short_values_are_not_registered_so_logs_stay_readable():
    register_secret("abc")
    assert redact("abc abc") == "abc abc"


def test_ordinary_text_is_left_alone():
    text = "synced prod: 3 added, 1 removed (AKIA…MPLE), took 0.2s; user password_reset_required"
    assert redact(text) == text


def _logger_with_stream(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger(name)
    log.handlers = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log, stream


def test_the_filter_masks_message_args_and_exception_text():
    log, stream = _logger_with_stream("roleup.test.filter")
    log.handlers[0].addFilter(RedactingFilter())
    secret = "xoxb-999-888-secretvalue"
    try:
        raise RuntimeError(f"failed with token {secret}")
    except RuntimeError:
        log.exception("call with %s", f"password={secret}x")
    output = stream.getvalue()
    assert "secretvalue" not in output
    assert "RuntimeError" in output and "call with password=" in output


@pytest.fixture
def restore_record_factory():
    factory = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(factory)


def test_installed_redaction_reaches_handlers_added_later(caplog, restore_record_factory):
    install_redaction()
    install_redaction()  # twice is harmless
    value = "in-flight-initial-P4ss"
    register_secret(value)
    try:
        with caplog.at_level(logging.INFO, logger="roleup.test.factory"):
            logging.getLogger("roleup.test.factory").info("creating login profile %s", value)
    finally:
        forget_secret(value)
    assert value not in caplog.text
    assert f"creating login profile {MASK}" in caplog.text


@pytest.fixture
def restore_root_logging(restore_record_factory):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers = handlers
    root.setLevel(level)


def test_the_cli_logging_writes_masked_lines_to_the_current_stderr(capsys, restore_root_logging):
    from bot.logging_setup import configure_logging

    configure_logging(verbose=False)
    configure_logging(verbose=False)  # again: still one handler of ours
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_roleup", False)]
    assert len(ours) == 1
    logging.getLogger("roleup.test.cli").info("token xoxb-1-2-abcdef in %s", "password=pw123456")
    logging.getLogger("roleup.test.cli").debug("not shown without -v")
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT secrets")
    err = capsys.readouterr().err
    assert "INFO roleup.test.cli: token xoxb-[redacted] in password=[redacted]" in err
    assert "abcdef" not in err and "pw123456" not in err
    assert "not shown" not in err and "SELECT" not in err
