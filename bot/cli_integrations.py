"""`roleup integrations list|add|update|remove|rotate-credentials` and `roleup rotate-keys`.

The secret access key is read from standard input when it is not a terminal, else from a hidden
prompt; it never comes from argv, so it never shows in `ps` or a shell history.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from bot.cli_common import CliError, cli_actor, opened_core
from bot.logging_setup import register_secret
from bot.services import integrations
from bot.services.integrations import IntegrationSpec
from bot.settings import Settings
from storage.models import Integration


# --- list ----------------------------------------------------------------------------------
def list_integrations(args: argparse.Namespace, settings: Settings) -> int:
    with opened_core(settings) as core:
        found = integrations.list_integrations(core)
    if args.json:
        for integration in found:
            print(json.dumps(integrations.describe(integration), sort_keys=True))
        return 0
    if not found:
        print("no integrations yet: add one with `roleup integrations add`", file=sys.stderr)
        return 0
    for integration in found:
        print(_line(integration))
    return 0


def _line(integration: Integration) -> str:
    if integration.last_sync_at:
        status = integration.last_sync_status or "done"
        synced = f"last sync {integration.last_sync_at:%Y-%m-%d %H:%M}Z {status}"
    else:
        synced = "never synced"
    return "  ".join(
        [
            integration.name,
            integrations.mode_of(integration),
            integration.path_prefix,
            integrations.credentials_label(integration),
            synced,
        ]
    )


# --- add -----------------------------------------------------------------------------------
def add_integration(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_keys()
    if args.external_id and not args.role_arn:
        raise CliError("--external-id goes with --role-arn")
    secret = read_secret_access_key() if args.access_key_id else None
    spec = IntegrationSpec(
        name=args.name,
        access_key_id=args.access_key_id,
        secret_access_key=secret,
        role_arn=args.role_arn,
        external_id=args.external_id,
        read_only=args.read_only,
        path_prefix=args.path_prefix,
        managers=_csv(args.managers),
        approvers=_csv(args.approvers),
        breakglass=_csv(args.breakglass),
        **_taken_alike(args),
        rotate_every_days=_rotate_every(args.rotate_every),
        review_every_days=args.review_every,
    )
    with opened_core(settings, need_keys=True) as core:
        added = integrations.add_integration(
            core, spec, actor=cli_actor(), validate=not args.no_validate
        )
        # Re-read: the first sync (after a validated add) has updated the row since.
        with core.sessions() as session:
            added = integrations.get_integration(session, added.name)
    print(f"added integration {added.name} ({_line(added)})")
    if added.last_sync_status == "failed":
        print(f"the first sync failed: {added.last_sync_error}", file=sys.stderr)
    return 0


def read_secret_access_key() -> str:
    """From a hidden prompt on a terminal, else the first line of standard input."""
    if sys.stdin.isatty():
        secret = getpass.getpass("Secret access key (hidden): ")
    else:
        secret = sys.stdin.readline()
    secret = secret.strip()
    if not secret:
        raise CliError(
            "the secret access key is empty: pipe it on standard input or type it at the prompt"
        )
    register_secret(secret)
    return secret


def _taken_alike(args: argparse.Namespace) -> dict[str, Any]:
    """The options `add` and `update` read the same way, as given."""
    return {
        "approvals_channel": args.approvals_channel,
        "sync_interval_minutes": args.sync_interval,
        "approve_onboarding": args.approve_onboarding,
        "approve_group_grants": args.approve_group_grants,
        "require_reason": args.require_reason,
        "approvals_required": args.approvals_required,
    }


def _csv(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _rotate_every(days: int | None) -> int | None:
    return None if days in (None, 0) else days


# --- update --------------------------------------------------------------------------------
def update_integration(args: argparse.Namespace, settings: Settings) -> int:
    settings.require_keys()
    if args.external_id is not None and not args.role_arn:
        raise CliError("--external-id goes with --role-arn")
    secret = read_secret_access_key() if args.access_key_id else None
    from bot.services import integration_update  # here: only `update` needs approvals' rules

    changes = integration_update.IntegrationChanges(
        read_only=args.read_only,
        path_prefix="/" if args.clear_path_prefix else args.path_prefix,
        managers=_csv_or_none(args.managers),
        approvers=_csv_or_none(args.approvers),
        breakglass=_csv_or_none(args.breakglass),
        **_taken_alike(args),
        privileged_policies=_csv_or_none(args.privileged_policies),
        privileged_groups=_csv_or_none(args.privileged_groups),
        rotate_every_days=args.rotate_every,
        review_every_days=args.review_every,
        access_key_id=args.access_key_id,
        secret_access_key=secret,
        role_arn=args.role_arn,
        external_id=args.external_id,
    )
    with opened_core(settings, need_keys=True) as core:
        result = integration_update.update_integration(
            core, args.name, changes, actor=cli_actor(), validate=not args.no_validate
        )
    if not result.changes:
        print(f"integration {result.name}: nothing to change")
        return 0
    print(f"updated integration {result.name}:")
    for line in result.changes:
        print(f"  {line}")
    if result.failed_requests:
        count = len(result.failed_requests)
        print(
            f"failed {count} pending request{'s' if count != 1 else ''} that would now be "
            f"refused: {', '.join(result.failed_requests)}"
        )
    return 0


def _csv_or_none(raw: str | None) -> list[str] | None:
    """None when the option was not given; an empty string empties the list."""
    return None if raw is None else _csv(raw)


# --- rotate-credentials ----------------------------------------------------------------------
def rotate_credentials(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services import key_rotation  # here: only this command rotates

    with opened_core(settings, need_keys=True) as core:
        outcome = key_rotation.rotate_credentials(core, args.name, actor=cli_actor())
    print(outcome.summary())
    return 0


# --- remove --------------------------------------------------------------------------------
def remove_integration(args: argparse.Namespace, settings: Settings) -> int:
    with opened_core(settings) as core:
        with core.sessions() as session:
            name = integrations.get_integration(session, args.name).name
        if not args.yes:
            _confirm_removal(name)
        integrations.remove_integration(core, name, actor=cli_actor())
    print(f"removed integration {name} and all of its data")
    return 0


def _confirm_removal(name: str) -> None:
    if not sys.stdin.isatty():
        raise CliError(f"not removing {name}: pass --yes to remove without a terminal")
    answer = input(
        f"Remove integration {name}, its encrypted key and all of its synced data? "
        "Type its name to confirm: "
    )
    if answer.strip() != name:
        raise CliError(f"not removing {name}: the name typed did not match")


# --- rotate-keys -----------------------------------------------------------------------------
def rotate_keys(args: argparse.Namespace, settings: Settings) -> int:
    with opened_core(settings, need_keys=True) as core:
        count = integrations.rotate_keys(core, actor=cli_actor())
    print(f"re-encrypted {count} secret{'s' if count != 1 else ''} with the first key")
    return 0
