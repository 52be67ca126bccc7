"""RoleUp's own flows played through the demo, as a person at the terminal sees them."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO

import boto3
import pytest

from bot.demo.console import Console
from bot.demo.world import DemoWorld
from bot.settings import Settings


@pytest.fixture(scope="module")
def world() -> Iterator[DemoWorld]:
    """One world for these tests (it takes seconds to start): each test touches its own users."""
    demo = DemoWorld(Settings()).start()
    yield demo
    demo.close()


def play(world: DemoWorld, *lines: str) -> str:
    for person in world.players:
        world.workspace.drain(person.id)  # what earlier tests left on screens is not this one's
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


def test_accounts_lists_the_seeded_users_with_groups_and_links(world: DemoWorld) -> None:
    out = after(play(world, "/accounts"), "maya> /accounts")
    assert "--- RoleUp in #general (only visible to you)" in out
    listing = out.split("maya>")[0]
    for user in ("alice", "carol", "dave", "erin"):  # bob may be offboarded by another test
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


def test_offboarding_asked_by_the_manager_and_approved_by_the_approver(world: DemoWorld) -> None:
    out = play(world, "/offboard bob", "switch", "1", "switch")
    asked = after(out, "maya> /offboard bob").split("maya>")[0].split("You are now")[0]
    assert "--- RoleUp in #aws-approvals" in asked
    assert "*Offboarding request* from @Maya Manager" in asked
    assert "Inline policy bob-scratch-bucket" in asked  # the plan previews what goes
    assert "Asked for approval in #aws-approvals" in asked
    as_arjun = after(out, "You are now Arjun Approver (approver).")
    assert "[1] Approve   [2] Deny" in as_arjun.split("arjun> 1")[0]
    done = after(as_arjun, "arjun> 1")
    assert "--- RoleUp in #aws-approvals (updated)" in done
    assert "✅ Delete the IAM user" in done
    assert "Done (approved by @Arjun Approver)" in done
    back = after(done, "You are now Maya Manager")
    assert "--- RoleUp in a direct message" in back
    assert "Your request to offboard demo/bob is done." in back
    assert iam_users() == ["alice", "carol", "dave", "erin"]
    listing = after(play(world, "/accounts"), "maya> /accounts")
    assert "*bob*" not in listing and "*alice*" in listing


def test_offboarding_a_slack_person_and_the_approver_denies(world: DemoWorld) -> None:
    out = play(world, "/offboard @alice", "switch", "2")
    asked = after(out, "maya> /offboard @alice")
    assert "to offboard demo/alice" in asked  # @alice is the Slack person linked to alice
    denied = after(out, "arjun> 2")
    assert "(updated)" in denied
    assert "Denied" in denied
    assert "alice" in iam_users()


def test_requester_cannot_approve_their_own_request(world: DemoWorld) -> None:
    out = play(world, "/offboard dave", "1")
    assert "[1] Approve   [2] Deny" in out
    clicked = after(out, "maya> 1")
    assert "(only visible to you)" in clicked
    assert "You asked for this, so someone else has to approve it." in clicked
    assert "dave" in iam_users()


def test_offboard_bad_input_gets_a_short_answer(world: DemoWorld) -> None:
    out = play(world, "/offboard", "/offboard nobody", "/offboard <!channel>")
    assert "Usage: `/offboard <iam-username> [integration] [ticket:SEC-123] [-- reason]`" in out
    assert "There is no IAM user nobody" in out
    assert "Traceback" not in out
    assert "#aws-approvals\n" not in out


def test_home_tab_and_switching_to_the_new_hire(world: DemoWorld) -> None:
    out = play(world, "home", "switch alice", "switch", "switch nobody")
    home = after(out, "maya> home")
    assert "--- RoleUp, Home tab" in home
    assert "RoleUp for AWS" in home
    assert "You are now Alice Doe (a new hire)." in out
    assert after(out, "alice> switch\n").startswith("You are now Maya Manager")
    assert "You can be maya, arjun, alice." in out


def iam_groups(user: str) -> list[str]:
    iam = boto3.client("iam", region_name="us-east-1")
    return sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"])


def test_onboarding_through_the_modal_shows_the_password_once_to_the_requester(
    world: DemoWorld,
) -> None:
    out = play(
        world,
        "/onboard",
        "",  # Integration: keep demo
        "zoe",  # Username
        "",  # Initial password: none typed...
        "yes",  # ...Generate one
        "readonly",  # Groups (developers holds PowerUserAccess: a privileged grant, held)
        "",  # For: Permanent
        "",  # Until: none
        "demo-s3",  # search Managed policies
        "1",
        "@alice",  # Slack user
        "",  # Account expires: never
        "",  # Reason (optional here)
        "",  # Ticket
        "",  # submit
        "/accounts demo zoe",
        "switch",
        "messages",
    )
    form = after(out, "maya> /onboard")
    for label in ("Integration", "Username", "Initial password", "Groups", "Managed policies"):
        assert f"  {label}" in form
    assert "Slack user (optional)" in form
    shown = after(form, 'Enter = Onboard, "cancel" = Cancel> \n')
    assert "--- RoleUp in #general (only visible to you)" in shown
    assert "Initial password for *zoe* in *demo*" in shown
    password = shown.split("Initial password for *zoe* in *demo*: `", 1)[1].split("`", 1)[0]
    assert len(password) >= 14
    assert "*zoe* was created in *demo*" in shown
    listing = after(out, "maya> /accounts demo zoe").split("maya>")[0]
    assert "*zoe*" in listing and "@Alice Doe" in listing and "`readonly`" in listing
    as_arjun = after(out, "You are now Arjun Approver")
    assert password not in as_arjun  # only the requester ever sees it
    assert out.count(password) == 1
    iam = boto3.client("iam", region_name="us-east-1")
    assert iam.get_login_profile(UserName="zoe")["LoginProfile"]["PasswordResetRequired"]
    assert iam_groups("zoe") == ["readonly"]
    attached = iam.list_attached_user_policies(UserName="zoe")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["demo-s3-data-read"]


def test_onboarding_refused_inline_then_corrected(world: DemoWorld) -> None:
    out = play(
        world,
        "/onboard",
        "",
        "carol",  # taken
        "",
        "y",
        "",
        "",  # For
        "",  # Until
        "",
        "",
        "",  # Account expires
        "",  # Reason
        "",  # Ticket
        "",  # submit: refused on the Username field, the modal stays open
        "yuki",
        "",  # submit again
    )
    refused = after(out, "The form is still open; fix what is marked:")
    assert "! The username carol is already taken." in refused
    assert "*yuki* was created in *demo*" in refused
    assert "yuki" in iam_users()


def test_groups_grant_directly_and_removal_through_approval(world: DemoWorld) -> None:
    out = play(
        world,
        "/groups erin",
        "developers, readonly",  # a grant: applied at once
        "",  # For: Permanent
        "",  # Until: none
        "",  # Reason
        "",  # Ticket
        "",
        "/groups erin",
        "readonly",  # a removal: needs an approver
        "",  # For
        "",  # Until
        "Erin moves to finance",  # Reason: shown to the approver
        "FIN-7",  # Ticket
        "",
        "switch",
        "1",
    )
    granted = after(out, "maya> /groups erin").split("maya> /groups erin")[0]
    assert "| Groups |" in granted
    removal = after(after(out, "maya> /groups erin"), "maya> /groups erin")
    assert "--- RoleUp in #aws-approvals" in removal
    assert "[1] Approve   [2] Deny" in removal
    assert "*Reason:* Erin moves to finance" in removal and "*Ticket:* FIN-7" in removal
    assert after(out, "arjun> 1").count("(updated)") >= 1
    assert iam_groups("erin") == ["readonly"]


def test_invite_answered_by_the_new_hire_and_approved(world: DemoWorld) -> None:
    out = play(
        world,
        "/onboard invite @alice",
        "",  # Slack user: @alice, as typed
        "readonly",  # Groups
        "",  # Managed policies
        "",  # For: Permanent
        "",  # Until: none
        "",  # Account expires: never
        "",  # Reason
        "",  # Ticket
        "",  # Send invite
        "switch alice",
        "1",  # Choose username and password
        "yuna",
        "Sup3r-Secret-Pass!x",
        "Sup3r-Secret-Pass!x",
        "",  # Send for approval
        "switch arjun",
        "1",  # Approve
        "switch alice",
    )
    as_alice = after(out, "You are now Alice Doe (a new hire).")
    assert "--- RoleUp in a direct message" in as_alice
    assert "/invite/" in as_alice  # the web page link, served by the demo's app
    request = after(out, "You are now Arjun Approver (approver).")
    assert "to onboard yuna in demo" in request
    assert "Sup3r-Secret-Pass!x" not in request  # the chosen password never reaches a message
    done = after(out, "arjun> 1")
    assert "Done (approved by @Arjun Approver)" in done
    told = after(done, "You are now Alice Doe")
    assert "yuna" in told and "done" in told
    assert "yuna" in iam_users()
    assert iam_groups("yuna") == ["readonly"]


@pytest.mark.slow
def test_a_grant_for_two_minutes_ends_by_itself_while_you_wait(world: DemoWorld) -> None:
    out = play(
        world,
        "/groups carol",
        "admins, billing",  # carol keeps admins; billing is added for a while
        "Until a date and time…",
        "+2m",
        "",  # Reason
        "",  # Ticket
        "",
        "/accounts demo carol",
        "wait 170",
    )
    changed = after(out, "Added: billing (until ")
    listing = after(changed, "maya> /accounts demo carol").split("maya>")[0]
    assert "`billing` (until " in listing
    waited = after(out, "maya> wait 170")
    assert "Access to *billing* for IAM user *carol* in *demo* has ended (expired)." in waited
    assert "billing" not in iam_groups("carol")
