"""`roleup sync` as a real process loads what a sync needs and nothing of the Slack app: its
start-up is part of the time bench/sync.py compares with a bare GetAccountAuthorizationDetails
process, so the server's frameworks must stay out of it."""

from __future__ import annotations

import re

from tests.support.cli import roleup_env, run_roleup
from tests.support.cli_integrations import add_key
from tests.support.config import TEST_KEY

# What a sync never uses: the Slack app and its web server, the migrations, the scheduler, the
# handlers, and the Prometheus client (nobody scrapes a command's metrics).
NEVER = ("slack_bolt", "slack_sdk", "flask", "alembic", "apscheduler", "handlers")
NEVER_FOR_SYNC = (*NEVER, "prometheus_client")
# `python -X importtime` writes one line per module imported: "import time: self | total | name".
IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)\s*$", re.MULTILINE)


def imported(stderr: str) -> set[str]:
    """The top-level packages a process imported, from its -X importtime report."""
    return {name.split(".")[0] for name in IMPORTED.findall(stderr)}


def test_the_importtime_report_is_read_as_modules():
    report = "import time: self [us] | cumulative | imported package\n"
    report += "import time:       120 |        120 |   slack_bolt.app\nroleup: done\n"
    assert imported(report) == {"slack_bolt"}


def test_roleup_sync_imports_no_slack_web_migrations_scheduler_or_handlers(
    cli, database_url, moto_url, aws
):
    aws.create_user(UserName="alice")
    assert add_key(cli).code == 0
    env = roleup_env(
        DATABASE_URL=database_url,
        ROLEUP_ENCRYPTION_KEYS=TEST_KEY,
        AWS_ENDPOINT_URL=moto_url,
        AWS_DEFAULT_REGION="us-east-1",
    )
    result = run_roleup("sync", env=dict(env, PYTHONPROFILEIMPORTTIME="1"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("prod: 1 accounts")
    loaded = imported(result.stderr)
    assert {"bot", "storage", "boto3", "sqlalchemy"} <= loaded  # the report was read
    assert sorted(loaded & set(NEVER_FOR_SYNC)) == []


def test_every_roleup_command_parses_without_the_slack_app():
    """The parser every command builds first loads none of them either."""
    result = run_roleup("sync", "--help", env=roleup_env(PYTHONPROFILEIMPORTTIME="1"))
    assert result.returncode == 0
    assert "--integration" in result.stdout
    loaded = imported(result.stderr)
    assert "bot" in loaded
    assert sorted(loaded & set(NEVER)) == []
