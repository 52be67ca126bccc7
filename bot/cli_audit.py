"""`roleup audit export [--since ISO-DATE] [--output FILE]`: the audit log as JSON lines."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bot.cli_common import CliError
from bot.services.container import Core
from bot.settings import Settings


def parse_since(raw: str | None) -> datetime | None:
    """An ISO date or date-time; naive values are taken as UTC."""
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise CliError(
            "--since must be an ISO date such as 2026-01-31 or 2026-01-31T12:00:00+00:00, "
            f"got {raw[:40]!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def export_audit(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import create_core
    from bot.services import audit
    from storage.db import check_store

    since = parse_since(args.since)
    core = create_core(settings)
    try:
        check_store(core.engine)
        if not args.output:
            with core.sessions() as session:
                count = audit.export_jsonl(session, sys.stdout, since)
            sys.stdout.flush()
        else:
            count = _export_to_file(core, Path(args.output), since)
    finally:
        core.engine.dispose()
    where = args.output or "standard output"
    print(f"roleup: exported {count} audit event(s) to {where}", file=sys.stderr)
    return 0


def _export_to_file(core: Core, path: Path, since: datetime | None) -> int:
    """Write next to the target and rename, so a failed export never leaves half a file."""
    from bot.services import audit

    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise CliError(f"--output: the directory {directory} does not exist")
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".roleup-audit-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out, core.sessions() as session:
            count = audit.export_jsonl(session, out, since)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count
