"""Messages of /roleup: help, the integrations list and the latest audit events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot.slack import blocks as bk
from bot.slack.dates import when
from bot.slack.mrkdwn import code, escape, people, truncate_escaped, user

if TYPE_CHECKING:
    from bot.services.audit import AuditEntry
    from bot.services.records import IntegrationInfo

HELP = [
    ("/onboard", "open the onboarding form (new IAM user, password, groups, policies)"),
    ("/onboard invite @user", "send someone a link to pick their own username and password"),
    (
        "/offboard <iam-username | @user> [-- reason]",
        "remove an account (or every account of a person)",
    ),
    ("/accounts [integration] [filter]", "list accounts, their groups and linked Slack users"),
    ("/groups <iam-username>", "see and change someone's groups"),
    ("/roleup integrations", "list integrations with their health and last sync"),
    ("/roleup integration add", "connect an AWS account (admins)"),
    ("/roleup integration edit <name>", "change an integration's settings or key (admins)"),
    ("/roleup integration remove <name>", "disconnect an AWS account, after approval (admins)"),
    ("/roleup sync [name]", "sync IAM into RoleUp now"),
    ("/roleup link @user <iam-username> [integration]", "link a Slack user to an IAM user"),
    ("/roleup audit [n]", "the latest audit events (admins)"),
    (
        "/roleup review start [integration] [days]",
        "start an access review of every account (managers, admins)",
    ),
    ("/roleup review status", "progress of the open access reviews"),
    (
        "/roleup breakglass <group> <duration> <reason>",
        "emergency access for up to 4 h, for people on the break-glass list",
    ),
]


def help_message() -> dict[str, Any]:
    # Usage placeholders like <name> must be escaped even inside code, or Slack reads a link.
    lines = "\n".join(f"`{escape(command)}` — {escape(what)}" for command, what in HELP)
    return {
        "text": "RoleUp for AWS: commands",
        "blocks": [bk.header("RoleUp for AWS"), bk.section(lines)],
    }


def integration_line(integration: IntegrationInfo, accounts: int) -> str:
    mode = "read-only" if integration.read_only else "read/write"
    health = integration.health_status or "not checked yet"
    sync_state = integration.last_sync_status or "never synced"
    account = integration.aws_account_id or "unknown account"
    synced = f"{when(integration.last_sync_at)} ({escape(sync_state)})"
    return (
        f"*{escape(integration.name)}* · {escape(account)} · {mode}"
        f" · path {code(integration.path_prefix)}\n"
        f"Health: {escape(health)} · Last sync: {synced}"
        f" · {accounts} account{'s' if accounts != 1 else ''}\n"
        f"Managers: {people(list(integration.managers))} · "
        f"Approvers: {people(list(integration.approvers))}"
    )


def integrations_message(
    integrations: Sequence[IntegrationInfo], accounts: dict[int, int]
) -> dict[str, Any]:
    body = [bk.header("Integrations")]
    body += [bk.section(integration_line(i, accounts.get(i.id, 0))) for i in integrations]
    if not integrations:
        body.append(bk.section("_No integrations yet._"))
    return {"text": f"{len(integrations)} integration(s)", "blocks": bk.fit_message(body)}


def audit_line(event: AuditEntry) -> str:
    target = f" {code(event.target, 120)}" if event.target else ""
    where = f" in {escape(event.integration)}" if event.integration else ""
    outcome = "" if event.outcome == "ok" else f" — *{escape(event.outcome)}*"
    actor = user(event.actor)
    line = f"{when(event.at)} {actor} {code(event.action, 60)}{target}{where}{outcome}"
    return line + _justification(event.detail if isinstance(event.detail, dict) else {})


def _justification(detail: dict[str, Any]) -> str:
    """A request's reason and ticket (recorded when it was made), escaped and kept short."""
    parts = []
    if detail.get("reason"):
        one_line = " ".join(str(detail["reason"]).split())
        parts.append(f"reason: {truncate_escaped(escape(one_line), 200)}")
    if detail.get("ticket"):
        parts.append(f"ticket: {code(detail['ticket'], 120)}")
    return f" — {' · '.join(parts)}" if parts else ""


def audit_message(events: Sequence[AuditEntry]) -> dict[str, Any]:
    """Latest first; lines are packed into sections below the 3000-character limit."""
    body = [bk.header(f"Audit: latest {len(events)}")]
    chunk: list[str] = []
    size = 0
    for event in events:
        line = audit_line(event)
        if chunk and size + len(line) + 1 > bk.MAX_SECTION_TEXT:
            body.append(bk.section("\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        body.append(bk.section("\n".join(chunk)))
    if not events:
        body.append(bk.section("_Nothing recorded yet._"))
    return {"text": f"Audit: latest {len(events)}", "blocks": bk.fit_message(body)}
