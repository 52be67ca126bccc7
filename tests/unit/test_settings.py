"""Settings are read from the environment and malformed values are named clearly."""

from __future__ import annotations

import pytest

from bot.settings import Settings, SettingsError
from tests.support.config import TEST_KEY


def test_defaults_need_nothing():
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///roleup.db"
    assert settings.port == 3000
    assert settings.public_url == "http://localhost:3000"
    assert settings.encryption_keys == ()


def test_every_variable_is_read():
    settings = Settings.from_env(
        {
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_APP_TOKEN": "xapp-1",
            "SLACK_API_URL": "http://127.0.0.1:9/api",
            "DATABASE_URL": "postgresql://u:p@db/roleup",
            "ROLEUP_ENCRYPTION_KEYS": f"{TEST_KEY}, {TEST_KEY}",
            "ROLEUP_ADMINS": "U1, U2,",
            "ROLEUP_PUBLIC_URL": "https://roleup.example.com/",
            "PORT": "8080",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        }
    )
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"
    assert settings.database_url == "postgresql+psycopg://u:p@db/roleup"
    assert settings.encryption_keys == (TEST_KEY, TEST_KEY)
    assert settings.admins == {"U1", "U2"}
    assert settings.public_url == "https://roleup.example.com"
    assert settings.port == 8080
    assert settings.aws_endpoint_url == "http://127.0.0.1:5000"


def test_public_url_defaults_to_the_port():
    assert Settings.from_env({"PORT": "4000"}).public_url == "http://localhost:4000"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"ROLEUP_ENCRYPTION_KEYS": "not-a-key"}, "ROLEUP_ENCRYPTION_KEYS"),
        ({"DATABASE_URL": "::nonsense::"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"SLACK_API_URL": "ftp://x"}, "SLACK_API_URL"),
        ({"ROLEUP_PUBLIC_URL": "roleup.example.com"}, "ROLEUP_PUBLIC_URL"),
    ],
)
def test_malformed_values_name_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_a_bad_key_is_not_echoed():
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"ROLEUP_ENCRYPTION_KEYS": "supersecretbutwrong"})
    assert "supersecretbutwrong" not in str(info.value)


@pytest.mark.parametrize(
    "missing", ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "ROLEUP_ENCRYPTION_KEYS"]
)
def test_serve_requires_its_variables(missing):
    env = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s",
        "ROLEUP_ENCRYPTION_KEYS": TEST_KEY,
    }
    del env[missing]
    with pytest.raises(SettingsError, match=missing):
        Settings.from_env(env).require_http()


def test_socket_requires_an_app_token():
    with pytest.raises(SettingsError, match="SLACK_APP_TOKEN"):
        Settings.from_env(
            {"SLACK_BOT_TOKEN": "xoxb-1", "ROLEUP_ENCRYPTION_KEYS": TEST_KEY}
        ).require_socket()


def test_scheduler_knobs_are_read():
    settings = Settings.from_env(
        {
            "ROLEUP_REMINDER_HOURS": "1.5",
            "ROLEUP_RECONCILE_SECONDS": "2",
            "ROLEUP_SYNC_INTERVAL_UNIT_SECONDS": "1",
            "ROLEUP_SCHEDULER": "off",
        }
    )
    assert settings.reminder_hours == 1.5
    assert settings.reconcile_seconds == 2
    assert settings.sync_interval_unit_seconds == 1
    assert settings.scheduler_enabled is False
    defaults = Settings.from_env({})
    assert (defaults.reminder_hours, defaults.reconcile_seconds) == (4.0, 30)
    assert defaults.sync_interval_unit_seconds == 60
    assert defaults.scheduler_enabled is True


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ROLEUP_REMINDER_HOURS": "soon"}, "ROLEUP_REMINDER_HOURS"),
        ({"ROLEUP_REMINDER_HOURS": "0"}, "ROLEUP_REMINDER_HOURS"),
        ({"ROLEUP_RECONCILE_SECONDS": "0"}, "ROLEUP_RECONCILE_SECONDS"),
        ({"ROLEUP_SYNC_INTERVAL_UNIT_SECONDS": "61"}, "ROLEUP_SYNC_INTERVAL_UNIT_SECONDS"),
    ],
)
def test_malformed_scheduler_knobs_name_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)
