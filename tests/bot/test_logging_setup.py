"""Secrets are masked in every log record, whatever handler receives it."""

from __future__ import annotations

import io
import logging

import pytest

from bot.logging_setup import (
    MASK,
    RedactingFilter,
    forget_secret,
    install_redaction,
    redact,
    register_secret,
)
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
