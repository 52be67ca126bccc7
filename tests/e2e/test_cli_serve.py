"""The real `python -m bot serve|socket|db upgrade` processes, and --help everywhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import inspect

from bot.cli import main
from storage.db import make_engine
from storage.migrate import latest_revisions
from tests.support.cli import (
    GIVE_UP_AFTER,
    UNREACHABLE_DB,
    assert_one_line_failure,
    roleup_env,
    run_roleup,
)
from tests.support.cli_commands import COMMANDS, _every_command  # noqa: F401
from tests.support.config import BOT_TOKEN, SIGNING_SECRET, TEST_KEY
from tests.support.postgres import free_port
from tests.support.signing import signed_headers


class Served:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=GIVE_UP_AFTER)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        assert self.process.stderr is not None
        return self.process.stderr.read()


def start_server(env: dict[str, str], argv: list[str] | None = None) -> Served:
    """Start `roleup serve` (or argv, where "{port}" stands for the port) on a free port."""
    port = free_port()
    env = dict(env, PORT=str(port), WEB_CONCURRENCY="1")
    argv = argv or [sys.executable, "-m", "bot", "serve", "--threads", "2"]
    process = subprocess.Popen(
        [arg.replace("{port}", str(port)) for arg in argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(process, f"http://127.0.0.1:{port}")
    try:
        _wait_until_it_answers(served)
    except BaseException:
        served.stop()  # never leave a server behind, whatever went wrong
        raise
    return served


def _wait_until_it_answers(served: Served) -> None:
    deadline = time.monotonic() + GIVE_UP_AFTER
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError(f"roleup serve exited early:\n{served.stop()}")
        try:
            requests.get(f"{served.url}/healthz", timeout=10)
            return
        except requests.RequestException:  # not listening yet, or the worker still booting
            time.sleep(0.2)
    raise AssertionError(f"roleup serve never answered:\n{served.stop()}")


@pytest.fixture
def serve_env(database_url: str, slack_api) -> dict[str, str]:
    return roleup_env(
        DATABASE_URL=database_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_api.url,
        ROLEUP_ENCRYPTION_KEYS=TEST_KEY,
    )


@pytest.fixture
def served(serve_env: dict[str, str]) -> Iterator[Served]:
    server = start_server(serve_env)
    yield server
    server.stop()


def test_serve_answers_health_and_refuses_unsigned_requests(served, slack_api):
    health = requests.get(f"{served.url}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok"}

    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"})
    unsigned = requests.post(
        f"{served.url}/slack/events",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert unsigned.status_code == 401
    signed = requests.post(
        f"{served.url}/slack/events",
        data=body,
        headers=signed_headers(SIGNING_SECRET, body, content_type="application/json"),
        timeout=10,
    )
    assert signed.status_code == 200
    assert signed.json() == {"challenge": "c-123"}
    assert slack_api.calls == []


def test_serve_runs_gunicorn_gthread_workers(served):
    stderr = served.stop()
    assert "Using worker: gthread" in stderr
    assert "Traceback" not in stderr


def test_the_wsgi_entry_runs_under_a_plain_gunicorn(serve_env):
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    argv = [gunicorn, "--bind", "127.0.0.1:{port}", "--workers", "1", "bot.wsgi:build()"]
    server = start_server(serve_env, argv)
    try:
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
        assert requests.post(f"{server.url}/slack/events", data="x", timeout=10).status_code == 401
    finally:
        server.stop()


def test_serve_without_the_signing_secret_names_it(serve_env):
    env = dict(serve_env)
    del env["SLACK_SIGNING_SECRET"]
    assert_one_line_failure(run_roleup("serve", env=env), "SLACK_SIGNING_SECRET")


def test_serve_without_encryption_keys_names_them(serve_env):
    env = dict(serve_env)
    del env["ROLEUP_ENCRYPTION_KEYS"]
    assert_one_line_failure(run_roleup("serve", env=env), "ROLEUP_ENCRYPTION_KEYS")


def test_serve_with_a_malformed_port_names_it(serve_env):
    assert_one_line_failure(run_roleup("serve", env=dict(serve_env, PORT="http")), "PORT")


def test_serve_with_a_malformed_web_concurrency_names_it(serve_env):
    result = run_roleup("serve", env=dict(serve_env, WEB_CONCURRENCY="many"))
    assert_one_line_failure(result, "WEB_CONCURRENCY", "1 to 64")


def test_serve_with_an_unreachable_database_says_so_in_one_line(serve_env):
    env = dict(serve_env, DATABASE_URL="postgresql://nobody:hunter2pw@127.0.0.1:1/none")
    result = run_roleup("serve", env=env)
    assert_one_line_failure(result, "cannot reach the database", "127.0.0.1:1/none")
    assert "hunter2pw" not in result.stderr


def test_serve_on_a_store_without_the_schema_says_to_upgrade(serve_env, fresh_database_url):
    result = run_roleup("serve", env=dict(serve_env, DATABASE_URL=fresh_database_url))
    assert_one_line_failure(result, "run `roleup db upgrade`")


def test_socket_without_the_app_token_says_so_in_one_line(serve_env):
    assert_one_line_failure(run_roleup("socket", env=serve_env), "SLACK_APP_TOKEN")


def test_socket_with_a_bot_token_in_place_of_the_app_token_is_refused(serve_env):
    env = dict(serve_env, SLACK_APP_TOKEN="xoxb-not-an-app-token")
    result = run_roleup("socket", env=env)
    assert_one_line_failure(result, "SLACK_APP_TOKEN", "xapp-")
    assert "not-an-app-token" not in result.stderr


def test_db_upgrade_creates_the_schema_on_a_fresh_database(fresh_database_url):
    env = roleup_env(DATABASE_URL=fresh_database_url)
    first = run_roleup("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    (head,) = latest_revisions()
    assert first.stdout == f"database upgraded from empty to {head}\n"
    engine = make_engine(fresh_database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"integrations", "accounts", "requests", "audit_events", "invites"} <= tables
    again = run_roleup("db", "upgrade", env=env)
    assert (again.returncode, again.stdout) == (0, f"database is up to date (revision {head})\n")


def test_db_upgrade_with_an_unreachable_database_says_so_in_one_line():
    result = run_roleup("db", "upgrade", env=roleup_env(DATABASE_URL=UNREACHABLE_DB))
    assert_one_line_failure(result, "cannot reach the database")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "roleup")
def test_help_on_every_command_exits_0(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: roleup")


def test_the_command_list_covers_the_product_cli():
    spelled = {" ".join(c) for c in COMMANDS}
    for command in (
        "serve",
        "socket",
        "demo",
        "sync",
        "integrations list",
        "integrations add",
        "integrations remove",
        "audit export",
        "rotate-keys",
        "db upgrade",
    ):
        assert command in spelled


def test_the_installed_roleup_script_answers_help():
    script = os.path.join(os.path.dirname(sys.executable), "roleup")
    result = subprocess.run(
        [script, "--help"], capture_output=True, text=True, timeout=GIVE_UP_AFTER, check=False
    )
    assert result.returncode == 0
    assert "rotate-keys" in result.stdout
