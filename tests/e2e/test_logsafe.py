"""The log guards: botocore and slack_sdk DEBUG body logs are dropped, the rest still flows."""

from __future__ import annotations

import logging

import boto3
import pytest

from bot.slack.logsafe import BODY_LOGGERS, DropDebugBodies, install_log_guards
from tests.support.logs import without_redaction

PASSWORD = "Guarded-Passw0rd-xyz"


@pytest.fixture
def bare_logging():
    """Only the guards under test: the other redaction layers set aside, guards removed."""
    saved = {n: list(logging.getLogger(n).filters) for n in BODY_LOGGERS}
    with without_redaction(BODY_LOGGERS):
        for name in BODY_LOGGERS:
            target = logging.getLogger(name)
            for f in [f for f in target.filters if isinstance(f, DropDebugBodies)]:
                target.removeFilter(f)
        yield
    for name, filters in saved.items():
        logging.getLogger(name).filters[:] = filters


def _create_login_profile(moto_url, caplog, user):
    caplog.set_level(logging.DEBUG)
    for name in ("botocore", *BODY_LOGGERS):
        caplog.set_level(logging.DEBUG, logger=name)
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_url)
    iam.create_user(UserName=user)
    iam.create_login_profile(UserName=user, Password=PASSWORD, PasswordResetRequired=True)


def test_unguarded_botocore_logs_the_password_at_debug(bare_logging, moto_url, caplog):
    _create_login_profile(moto_url, caplog, "unguarded")
    assert PASSWORD in caplog.text  # what the guards are for


def test_guarded_botocore_debug_log_has_no_password(bare_logging, moto_url, caplog):
    install_log_guards()
    _create_login_profile(moto_url, caplog, "guarded")
    assert PASSWORD not in caplog.text
    assert any(r.levelno == logging.DEBUG for r in caplog.records)


def test_guards_pass_info_and_above():
    record = logging.LogRecord("botocore.endpoint", logging.INFO, "", 0, "x", (), None)
    assert DropDebugBodies().filter(record)
    record.levelno = logging.DEBUG
    assert not DropDebugBodies().filter(record)
