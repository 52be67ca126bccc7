"""ROLEUP_LOG_FORMAT=json: one parsable object a line, masked like the text lines, each carrying
the request it is about; and the third-party bookkeeping kept out of INFO."""

from __future__ import annotations

import json
import logging

import pytest

from bot.log_context import log_context
from bot.logging_setup import configure_logging, secret_in_flight
from bot.scheduler import JobFunctions, JobScheduler
from bot.services import approvals
from storage.models import Integration
from tests.support.requests import submit_request

# A registered secret with characters JSON escapes: masking the serialised line would miss it.
ODD_SECRET = 'Pa"ss\\word-\u00e9-Secret-42'
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SLACK_TOKEN = "xoxb-1234-5678-abcdefSECRET"


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level, factory = list(root.handlers), root.level, logging.getLogRecordFactory()
    levels = {name: logging.getLogger(name).level for name in ("apscheduler", "botocore")}
    yield
    root.handlers = handlers
    root.setLevel(level)
    logging.setLogRecordFactory(factory)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def lines_of(err: str) -> list[dict]:
    """Every line standard error got, each of which must be one JSON object."""
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_each_line_is_one_masked_json_object_with_its_context(capsys, restore_logging):
    configure_logging(log_format="json")
    log = logging.getLogger("roleup.test.json")
    with secret_in_flight(ODD_SECRET), log_context(request_id="req-1", integration="prod"):
        with log_context(actor="UALICE"):
            log.info("checking %s and aws_secret_access_key=%s", ODD_SECRET, AWS_SECRET)
            try:
                raise ValueError(f"AWS said no to {ODD_SECRET} with {SLACK_TOKEN}")
            except ValueError:
                log.exception("the call failed\nover two lines")
        log.warning("after the actor's block")
    log.info("outside any request")

    err = capsys.readouterr().err
    for secret in (ODD_SECRET, json.dumps(ODD_SECRET)[1:-1], AWS_SECRET, "abcdefSECRET"):
        assert secret not in err
    first, failed, after, outside = lines_of(err)
    assert first["level"] == "INFO" and first["logger"] == "roleup.test.json"
    assert first["message"] == "checking [redacted] and aws_secret_access_key=[redacted]"
    assert (first["request_id"], first["integration"], first["actor"]) == (
        "req-1",
        "prod",
        "UALICE",
    )
    assert first["timestamp"].endswith("+00:00")
    assert failed["message"] == "the call failed\nover two lines"
    assert "ValueError: AWS said no to [redacted] with xoxb-[redacted]" in failed["exception"]
    assert (after["request_id"], "actor" in after) == ("req-1", False)
    assert set(outside) == {"timestamp", "level", "logger", "message"}


def test_text_lines_carry_the_request_they_are_about(capsys, restore_logging):
    configure_logging(log_format="text")
    with log_context(request_id="req-2", integration="prod", actor="UBOB"):
        logging.getLogger("roleup.test.text").info("working")
    err = capsys.readouterr().err
    assert "INFO roleup.test.text: working [request=req-2 integration=prod actor=UBOB]" in err


def test_every_line_about_a_request_carries_its_id(core, capsys, restore_logging):
    configure_logging(log_format="json")
    with core.sessions.begin() as session:
        row = Integration(
            name="prod",
            approvers=["UAPPROVER"],
            managers=["UMANAGER"],
            approvals_channel="CAPPROVALS",
            created_by="UADMIN",
        )
        session.add(row)
        session.flush()
        prod = row.id
    request = submit_request(
        core,
        kind="offboard",
        integration_id=prod,
        requester="UMANAGER",
        payload={
            "target": "alice",
            "accounts": [{"integration_id": prod, "integration": "prod", "user_name": "alice"}],
        },
    )
    approvals.decide(core, request.id, approver="UAPPROVER", approve=False)

    lines = lines_of(capsys.readouterr().err)
    about = [line for line in lines if request.id in line["message"]]
    assert len(about) >= 2  # submitted, and what the notifier did with the decision
    assert all(line.get("request_id") == request.id for line in about)
    decided = [line for line in about if line.get("actor") == "UAPPROVER"]
    assert decided, about


def test_scheduler_bookkeeping_and_bolts_token_warning_stay_out_of_info(
    settings, capsys, restore_logging, monkeypatch
):
    from bot.app import create_app

    monkeypatch.setenv("SLACK_BOT_TOKEN", settings.slack_bot_token)  # as `roleup serve` has it
    configure_logging(log_format="json")
    app = create_app(settings)
    nothing = JobFunctions(
        sync=lambda *a: None, health=lambda core: None, housekeeping=lambda core: None
    )
    scheduler = JobScheduler(app.core, jobs=nothing, instance="test:1")
    scheduler.start()
    scheduler.reconcile()
    scheduler.shutdown()
    app.close()

    messages = [line["message"] for line in lines_of(capsys.readouterr().err)]
    assert "scheduler started as test:1" in messages
    assert not [m for m in messages if "Adding job" in m or "Added job" in m]
    assert not [m for m in messages if "will be unused" in m]


def test_an_unknown_log_format_is_refused_in_one_line(cli, monkeypatch):
    monkeypatch.setenv("ROLEUP_LOG_FORMAT", "xml")
    result = cli("integrations", "list")
    assert result.code == 1
    assert result.err.strip() == "roleup: ROLEUP_LOG_FORMAT must be text or json, got 'xml'"
