"""`roleup audit export`: JSON lines, --since, --output, one-line errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.cli import main
from bot.services import audit
from storage.models import AuditEvent


@pytest.fixture
def env(monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)


@pytest.fixture
def events(sessions):
    old = datetime.now(UTC) - timedelta(days=10)
    with sessions.begin() as session:
        session.add(AuditEvent(actor="UOLD", action="sync", outcome="ok", at=old, detail={}))
        audit.record(
            session, actor="UMANAGER", action="onboard", target="alice", integration="prod"
        )
        audit.record(session, actor="UAPPROVER", action="decide", target="r1", outcome="denied")


def test_export_to_a_file_as_json_lines(env, events, tmp_path, capsys):
    out = tmp_path / "audit.jsonl"
    assert main(["audit", "export", "--output", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["action"] for e in lines] == ["sync", "onboard", "decide"]
    assert lines[1]["target"] == "alice" and lines[1]["integration"] == "prod"
    assert lines[2]["outcome"] == "denied"
    assert "exported 3 audit event(s)" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["audit.jsonl"]  # no temporary left


def test_since_keeps_newer_events_and_stdout_is_the_default(env, events, capsys):
    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert main(["audit", "export", "--since", since]) == 0
    out = capsys.readouterr().out
    assert [json.loads(line)["action"] for line in out.splitlines()] == ["onboard", "decide"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["audit", "export", "--since", "yesterday"], "--since must be an ISO date"),
        (["audit", "export", "--output", "/nonexistent/dir/x.jsonl"], "does not exist"),
    ],
)
def test_bad_arguments_fail_with_one_line(env, events, capsys, argv, message):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_requests_reason_and_ticket_are_in_the_export(env, sessions, capsys):
    with sessions.begin() as session:
        audit.record(
            session,
            actor="UMANAGER",
            action="request.created",
            target="alice",
            request_id="r2",
            detail={"kind": "offboard", "reason": "Left <!channel>", "ticket": "SEC-1"},
        )
    assert main(["audit", "export"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    detail = json.loads(line)["detail"]
    assert (detail["reason"], detail["ticket"]) == ("Left <!channel>", "SEC-1")


def test_events_recorded_in_one_insert_are_exported_in_their_order(env, sessions, capsys):
    together = [
        {"actor": "UAPPROVER", "action": "request.approved", "target": "bob", "request_id": "r3"},
        {"actor": "UAPPROVER", "action": "request.running", "target": "bob", "request_id": "r3"},
    ]
    with sessions.begin() as session:
        audit.record_all(session, [{**e, "outcome": "ok", "detail": {}} for e in together])
    assert main(["audit", "export"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["action"], e["target"], e["outcome"]) for e in lines] == [
        ("request.approved", "bob", "ok"),
        ("request.running", "bob", "ok"),
    ]


def test_events_recorded_together_refuse_a_detail_that_looks_like_a_secret(sessions):
    with pytest.raises(ValueError, match="looks like a secret"), sessions.begin() as session:
        audit.record_all(
            session, [{"actor": "U1", "action": "x", "detail": {"password": "hunter2"}}]
        )
    with sessions() as session:
        assert session.scalars(select(AuditEvent.action)).all() == []
