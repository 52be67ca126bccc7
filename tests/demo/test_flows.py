"""RoleUp's own flows played through the demo, as a person at the terminal sees them."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO

import boto3
import pytest

from bot.demo.console import Console
from bot.demo.world import MANAGER, DemoWorld
from bot.settings import Settings


@pytest.fixture
def world() -> Iterator[DemoWorld]:
    demo = DemoWorld(Settings()).start()
    yield demo
    demo.close()


def play(world: DemoWorld, *lines: str) -> str:
    out = StringIO()
    console = Console(StringIO("".join(line + "\n" for line in lines)), out)
    world.terminal(console).run()
    return out.getvalue()


def after(text: str, marker: str) -> str:
    assert marker in text, f"{marker!r} not in:\n{text}"
    return text.split(marker, 1)[1]


def iam_users() -> list[str]:
    iam = boto3.client("iam", region_name="us-east-1")
    return sorted(u["UserName"] for u in iam.list_users(PathPrefix="/people/")["Users"])


def ask_to_offboard(world: DemoWorld, user: str) -> None:
    """What /offboard does once it has checked its input (until the command lands here)."""
    from bot.services import approvals

    assert world.company is not None
    integration_id = world.company.integration_id
    approvals.submit(
        world.roleup.core,
        kind="offboard",
        integration_id=integration_id,
        requester=MANAGER.id,
        payload={
            "target": user,
            "accounts": [
                {"integration_id": integration_id, "integration": "demo", "user_name": user}
            ],
        },
    )
    world.settle()


def test_accounts_lists_the_seeded_users_with_groups_and_links(world: DemoWorld) -> None:
    out = after(play(world, "/accounts"), "maya> /accounts")
    assert "--- RoleUp in #general (only visible to you)" in out
    listing = out.split("maya>")[0]
    for user in ("alice", "bob", "carol", "dave", "erin"):
        assert f"*{user}*" in listing
    assert "@Alice Doe" in listing  # alice is linked to the Slack person at set-up
    assert "`billing`, `readonly`" in listing  # dave's groups
    assert "roleup-bot" not in listing  # RoleUp's own user is outside the path prefix
    assert "[1] Refresh" in listing


def test_accounts_filter_and_refresh(world: DemoWorld) -> None:
    out = play(world, "/accounts demo car", "1")
    first = after(out, "maya> /accounts demo car").split("maya>")[0]
    assert "*carol*" in first and "*alice*" not in first
    refreshed = after(out, "maya> 1")
    assert "*carol*" in refreshed


def test_approver_switches_in_and_approves_an_offboarding(world: DemoWorld) -> None:
    ask_to_offboard(world, "bob")
    out = play(world, "switch", "1", "switch")
    as_arjun = after(out, "You are now Arjun Approver (approver).")
    request = as_arjun.split("arjun> 1")[0]
    assert "--- RoleUp in #aws-approvals" in request
    assert "*Offboarding request* from @Maya Manager" in request
    assert "[1] Approve   [2] Deny" in request
    done = after(as_arjun, "arjun> 1")
    assert "--- RoleUp in #aws-approvals (updated)" in done
    assert "✅ Delete the IAM user" in done
    assert "Done (approved by @Arjun Approver)" in done
    back = after(done, "You are now Maya Manager")
    assert "--- RoleUp in a direct message" in back
    assert "Your request to offboard demo/bob is done." in back
    assert iam_users() == ["alice", "carol", "dave", "erin"]


def test_requester_cannot_approve_their_own_request(world: DemoWorld) -> None:
    ask_to_offboard(world, "dave")
    out = play(world, "1")
    assert "[1] Approve   [2] Deny" in out
    clicked = after(out, "maya> 1")
    assert "(only visible to you)" in clicked
    assert "You asked for this, so someone else has to approve it." in clicked
    assert "dave" in iam_users()
