"""The demo starts a small access review that the person at the terminal decides in the Home
tab: Keep through its modal, Offboard raising an approval the approver approves."""

from __future__ import annotations

from bot.demo import run_script
from bot.settings import Settings


def test_the_demo_starts_a_review_decided_from_the_home_tab() -> None:
    out = run_script(
        Settings(),
        [
            "home",
            "10",  # Keep on dave (every account is flagged: by name)
            "contractor until March",
            "",
            "12",  # Offboard on erin, now the fourth item
            "switch",
            "1",  # Arjun approves the offboarding
            "switch",
            "home",
            "quit",
        ],
    )
    banner, _, session = out.partition("maya> home")
    assert "Access review #1 of `demo` is open: Maya decides its accounts in the Home tab" in banner
    assert ":mag: *Access review #1 of demo*: 5 accounts for you to review by" in banner
    first_home = session.split("maya> 10")[0]
    assert "5 accounts wait for your review (showing 1 to 5, flagged first)" in first_home
    assert "*dave* in *demo*" in first_home and "[10] Keep" in first_home

    kept = session.split("maya> 10")[1].split("maya> 12")[0]
    assert "| Keep access |" in kept and "*dave* in *demo*" in kept
    assert (
        "4 accounts wait for your review" in kept
        and "*dave* in *demo*" not in kept.split("--- RoleUp, Home tab")[1]
    )

    offboarded = session.split("maya> 12")[1].split("arjun> 1")[0]
    assert "Asked to offboard erin from demo. An approver decides it." in offboarded
    assert "*Reason:* Access review #1: offboard" in offboarded
    approved = session.split("arjun> 1")[1]
    assert "Offboarded demo/erin: AWS confirms the user is gone." in approved
    last_home = session.split("maya> home")[-1]
    assert "3 accounts wait for your review" in last_home
