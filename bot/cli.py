"""The `roleup` command line (also `python -m bot`): one-line errors, secrets never from argv."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

from bot.cli_audit import export_audit
from bot.cli_common import CliError
from bot.cli_expiries import add_parser as add_expiries_parser
from bot.cli_grants import add_parser as add_grants_parser
from bot.cli_integrations import (
    add_integration,
    list_integrations,
    remove_integration,
    rotate_credentials,
    rotate_keys,
    update_integration,
)
from bot.cli_reviews import add_parser as add_reviews_parser
from bot.cli_sync import run_sync
from bot.demo import run_demo
from bot.logging_setup import configure_logging
from bot.settings import Settings, SettingsError, log_format

logger = logging.getLogger("roleup.cli")


@functools.cache
def _parser() -> argparse.ArgumentParser:
    """The one parser of this process, built at its first command (~15 ms of CPU each time):
    parsing keeps nothing in it, and its defaults are constants."""
    return build_parser()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roleup", description="RoleUp for AWS: onboard and offboard AWS IAM users from Slack."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server (Slack events, health, invites)")
    serve.add_argument(
        "--workers", type=int, metavar="N", help="worker processes (default: $WEB_CONCURRENCY or 2)"
    )
    serve.add_argument("--threads", type=int, default=8, metavar="N", help="threads per worker")
    serve.add_argument("--bind", help="host:port (default 0.0.0.0:$PORT)")
    _add_no_jobs(serve)
    serve.set_defaults(handler=_serve)

    worker = sub.add_parser(
        "worker", help="run the scheduled jobs (syncs, expiries, reminders) with no HTTP listener"
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve this worker's GET /metrics on PORT (default: no listener)",
    )
    worker.set_defaults(handler=_worker)

    socket = sub.add_parser("socket", help="run over Socket Mode (no public URL needed)")
    _add_no_jobs(socket)
    socket.set_defaults(handler=_socket)

    demo = sub.add_parser("demo", help="play with the bot locally: no Slack or AWS account needed")
    demo.set_defaults(handler=run_demo)

    sync = sub.add_parser("sync", help="sync IAM into the store now")
    sync.add_argument("--integration", metavar="NAME", help="only this integration")
    sync.set_defaults(handler=run_sync)

    integrations = sub.add_parser("integrations", help="list, add or remove integrations")
    isub = integrations.add_subparsers(dest="action", metavar="ACTION", required=True)
    ilist = isub.add_parser("list", help="one integration a line")
    ilist.add_argument("--json", action="store_true", help="JSON lines for machines")
    ilist.set_defaults(handler=list_integrations)
    iadd = isub.add_parser(
        "add",
        help="add an integration; the secret access key is read from stdin or a hidden prompt",
    )
    iadd.add_argument("name")
    cred = iadd.add_mutually_exclusive_group(required=True)
    cred.add_argument("--access-key-id", metavar="ID")
    cred.add_argument("--role-arn", metavar="ARN")
    iadd.add_argument("--external-id", metavar="X", help="with --role-arn")
    iadd.add_argument("--read-only", action="store_true")
    iadd.add_argument("--path-prefix", default="/", metavar="/p/")
    iadd.add_argument("--managers", default="", metavar="U1,U2")
    iadd.add_argument("--approvers", default="", metavar="U3,U4")
    iadd.add_argument(
        "--breakglass", default="", metavar="U5,S6", help="who may use /roleup breakglass"
    )
    iadd.add_argument("--approvals-channel", metavar="C1")
    iadd.add_argument("--sync-interval", type=int, default=15, metavar="MINUTES")
    iadd.add_argument("--approve-onboarding", action="store_true")
    iadd.add_argument("--approve-group-grants", action="store_true")
    iadd.add_argument(
        "--require-reason", action="store_true", help="every request must say why (a reason)"
    )
    iadd.add_argument(
        "--approvals-required",
        type=int,
        default=1,
        metavar="N",
        help="distinct approvers (1-3) for offboarding, privileged grants and removal",
    )
    iadd.add_argument(
        "--rotate-every",
        type=int,
        metavar="DAYS",
        help="rotate RoleUp's own access key every DAYS days (1-365; default: never)",
    )
    iadd.add_argument(
        "--review-every",
        type=int,
        metavar="DAYS",
        help="start an access review of its accounts every DAYS days (7-366)",
    )
    iadd.add_argument("--no-validate", action="store_true", help="save without checking with AWS")
    iadd.set_defaults(handler=add_integration)
    _add_update_parser(isub)
    irotate = isub.add_parser(
        "rotate-credentials",
        help="replace RoleUp's own access key: create, validate, save, deactivate, delete",
    )
    irotate.add_argument("name")
    irotate.set_defaults(handler=rotate_credentials)
    iremove = isub.add_parser("remove", help="remove an integration and all of its data")
    iremove.add_argument("name")
    iremove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    iremove.set_defaults(handler=remove_integration)

    audit = sub.add_parser("audit", help="the audit log")
    asub = audit.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = asub.add_parser("export", help="write the audit log as JSON lines")
    export.add_argument("--output", "-o", metavar="FILE", help="default: standard output")
    export.add_argument("--since", metavar="ISO-DATE")
    export.set_defaults(handler=export_audit)

    add_grants_parser(sub)
    add_reviews_parser(sub)
    add_expiries_parser(sub)

    rotate = sub.add_parser("rotate-keys", help="re-encrypt every secret with the first key")
    rotate.set_defaults(handler=rotate_keys)

    db = sub.add_parser("db", help="the store's schema")
    dsub = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = dsub.add_parser("upgrade", help="apply the migrations")
    up.set_defaults(handler=_db_upgrade)

    keygen = sub.add_parser("keygen", help="print a new key for ROLEUP_ENCRYPTION_KEYS")
    keygen.set_defaults(handler=_keygen)
    return parser


def _add_no_jobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-jobs",
        action="store_true",
        help="run no scheduled jobs here: a `roleup worker` runs them (as ROLEUP_SCHEDULER=off)",
    )


def _without_jobs(settings: Settings, no_jobs: bool) -> Settings:
    """`--no-jobs` of serve and socket: the same as ROLEUP_SCHEDULER=off for this process."""
    if no_jobs:
        settings = replace(settings, scheduler_enabled=False)
    if not settings.scheduler_enabled:
        logger.info("scheduled jobs are off in this process: a `roleup worker` must run them")
    return settings


def _add_update_parser(isub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`integrations update NAME`: every option of `add`, each optional (unchanged when left
    out); a list option replaces the list and an empty one (`--managers ''`) empties it."""
    up = isub.add_parser(
        "update",
        help="change an integration in place; a new secret access key is read from stdin",
    )
    up.add_argument("name")
    cred = up.add_mutually_exclusive_group()
    cred.add_argument("--access-key-id", metavar="ID", help="new key; the secret on stdin")
    cred.add_argument("--role-arn", metavar="ARN", help="assume this role instead")
    up.add_argument("--external-id", metavar="X", help="with --role-arn")
    flag = argparse.BooleanOptionalAction
    up.add_argument("--read-only", action=flag, default=None)
    prefix = up.add_mutually_exclusive_group()
    prefix.add_argument("--path-prefix", metavar="/p/")
    prefix.add_argument("--clear-path-prefix", action="store_true", help="the whole account")
    for option, metavar in (
        ("--managers", "U1,U2"),
        ("--approvers", "U3,S4"),
        ("--breakglass", "U5,S6"),
        ("--privileged-policies", "NAME|ARN,..."),
        ("--privileged-groups", "GROUP,..."),
    ):
        up.add_argument(option, metavar=metavar, help="replaces the list; '' empties it")
    up.add_argument("--approvals-channel", metavar="C1", help="'' removes it")
    up.add_argument("--sync-interval", type=int, metavar="MINUTES")
    up.add_argument("--approve-onboarding", action=flag, default=None)
    up.add_argument("--approve-group-grants", action=flag, default=None)
    up.add_argument("--require-reason", action=flag, default=None)
    up.add_argument("--approvals-required", type=int, metavar="N")
    up.add_argument(
        "--rotate-every", type=int, metavar="DAYS", help="rotate the access key (0: never)"
    )
    up.add_argument(
        "--review-every", type=int, metavar="DAYS", help="start access reviews (0: never)"
    )
    up.add_argument("--no-validate", action="store_true", help="save without checking with AWS")
    up.set_defaults(handler=update_integration)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from storage.db import check_store, make_engine
    from storage.migrate import check_schema

    settings.require_http()
    # Before gunicorn is imported: its config module reads WEB_CONCURRENCY as it loads.
    workers = args.workers if args.workers is not None else web_concurrency()
    if not 1 <= workers <= 64 or not 1 <= args.threads <= 256:
        raise CliError("--workers must be from 1 to 64 and --threads from 1 to 256")
    engine = make_engine(settings.database_url)
    try:
        check_store(engine)
        check_schema(engine)
    finally:
        engine.dispose()
    settings = _without_jobs(settings, args.no_jobs)
    from bot.server import serve

    serve(settings, workers=workers, threads=args.threads, bind=args.bind)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from bot.worker import run_worker

    settings.require_worker()
    port = args.metrics_port
    if port is not None and not 1 <= port <= 65535:
        raise CliError("--metrics-port must be from 1 to 65535")
    return run_worker(settings, metrics_port=port)


def web_concurrency() -> int:
    """Worker processes for `roleup serve`: WEB_CONCURRENCY (as Heroku-style hosts set it)."""
    raw = os.environ.get("WEB_CONCURRENCY", "").strip()
    if not raw:
        return 2
    if not raw.isdigit() or not 1 <= int(raw) <= 64:
        raise SettingsError(
            f"WEB_CONCURRENCY must be a whole number from 1 to 64, got {raw[:20]!r}"
        )
    return int(raw)


def _socket(args: argparse.Namespace, settings: Settings) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.app import create_app
    from bot.slack.acked_work import exit_cutting_off
    from bot.worker import STOP_GRACE_SECONDS, catch_stop_signals
    from storage.db import check_store
    from storage.migrate import check_schema

    settings.require_socket()
    # SIGTERM and SIGINT end the wait below, so the work already acked is finished first.
    stop, restore = catch_stop_signals()
    try:
        roleup = create_app(_without_jobs(settings, args.no_jobs))
        check_store(roleup.core.engine)
        check_schema(roleup.core.engine)
        if roleup.core.scheduler is not None:
            roleup.core.scheduler.start()
        handler = SocketModeHandler(roleup.bolt, settings.slack_app_token)
        handler.connect()
        stop.wait()
        # An event that comes now finds no listener thread and is not acked: Slack sends it again.
        finished = roleup.close(grace=STOP_GRACE_SECONDS)
        handler.close()
        if not finished:  # its people were told (bot.slack.acked_work)
            exit_cutting_off()
        return 0
    finally:
        restore()


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from storage.db import check_store, make_engine
    from storage.migrate import current_revisions, upgrade

    engine = make_engine(settings.database_url)
    try:
        check_store(engine)
        before = current_revisions(engine)
        upgrade(settings.database_url)
        after = current_revisions(engine)
    finally:
        engine.dispose()
    if before == after:
        print(f"database is up to date (revision {', '.join(sorted(after))})")
    else:
        was = ", ".join(sorted(before)) or "empty"
        print(f"database upgraded from {was} to {', '.join(sorted(after))}")
    return 0


def _keygen(args: argparse.Namespace, settings: Settings) -> int:
    from storage.crypto import generate_key

    print(generate_key())
    return 0


def _known_errors() -> tuple[type[BaseException], ...]:
    from storage.crypto import SecretUnreadable
    from storage.db import StoreUnavailable

    errors: list[type[BaseException]] = [
        CliError,
        SettingsError,
        StoreUnavailable,
        SecretUnreadable,
    ]
    try:
        from bot.services.errors import RoleUpError

        errors.append(RoleUpError)
    except ImportError:
        pass
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(verbose=args.verbose)
    try:
        configure_logging(verbose=args.verbose, log_format=log_format())
        settings = Settings.from_env()
        return int(args.handler(args, settings))
    except _known_errors() as exc:
        print(f"roleup: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: one line, details only in the log
        logger.debug("unexpected error", exc_info=True)
        print(f"roleup: unexpected error ({type(exc).__name__}); rerun with -v", file=sys.stderr)
        return 1
