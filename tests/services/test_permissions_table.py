"""bot.services.iam.PERMISSIONS is the one list of IAM actions RoleUp uses: the credential check
asks for exactly these, so every IAM operation the code can call must be in it."""

from __future__ import annotations

import ast
from pathlib import Path

import botocore.session
from botocore import xform_name

from bot.services.iam import PERMISSIONS, permissions_needed
from tests.support.source import nodes

ROOT = Path(__file__).resolve().parents[2]
#: RoleUp's own code; the demo seeds its moto account with a client of its own.
SOURCES = [
    path
    for folder in ("bot", "handlers")
    for path in sorted((ROOT / folder).rglob("*.py"))
    if "demo" not in path.relative_to(ROOT).parts
]


def iam_operations() -> dict[str, str]:
    """Every IAM client method name (snake_case) and the action it is authorised as."""
    model = botocore.session.get_session().get_service_model("iam")
    return {xform_name(name): f"iam:{name}" for name in model.operation_names}


def called_in(path: Path, operations: dict[str, str]) -> set[str]:
    """Attribute access like `iam.list_users` and names passed as strings to the paginating
    helpers (`_pages(iam, "list_access_keys", ...)`)."""
    found = set()
    for node in nodes(path):
        if isinstance(node, ast.Attribute) and node.attr in operations:
            found.add(operations[node.attr])
        elif isinstance(node, ast.Constant) and str(node.value) in operations:
            found.add(operations[str(node.value)])
    return found


def test_every_iam_call_in_the_code_is_in_the_permissions_table():
    operations = iam_operations()
    used: dict[str, list[str]] = {}
    for path in SOURCES:
        for action in called_in(path, operations):
            used.setdefault(action, []).append(str(path.relative_to(ROOT)))
    listed = {p.action for p in PERMISSIONS}
    missing = {action: files for action, files in used.items() if action not in listed}
    assert missing == {}, "add these to bot.services.iam.PERMISSIONS"
    # ...and the table holds nothing the code no longer calls.
    assert listed - set(used) == set()
    # The scan does see the calls made through the paginating helpers.
    assert {"iam:ListSSHPublicKeys", "iam:ListAccessKeys", "iam:ListUsers"} <= set(used)


def test_the_table_names_each_action_once_and_read_only_asks_for_no_write():
    actions = [p.action for p in PERMISSIONS]
    assert len(actions) == len(set(actions))
    assert set(actions) <= set(iam_operations().values())
    read_only = {p.action for p in permissions_needed(read_only=True)}
    assert read_only == {
        "iam:GetAccountAuthorizationDetails",
        "iam:ListUsers",
        "iam:ListPolicies",
        "iam:GenerateCredentialReport",
        "iam:GetCredentialReport",
        "iam:GetUser",
        "iam:ListGroupsForUser",
    }
