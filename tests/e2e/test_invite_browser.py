"""The invite page in a real browser: Debian's headless Chromium driven by Playwright.

The app runs as a live server over HTTP, AWS is a moto server; the browser opens the link the
invitee got, fills the form as a person would, and reads what the page shows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from storage.models import Invite, Request, utcnow
from tests.support.invite_kit import GOOD_PASSWORD, make_invite
from tests.support.secrets import rows_containing
from tests.support.seed import add_integration

pytestmark = [pytest.mark.browser, pytest.mark.moto_server]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Set ROLEUP_SCREENSHOTS=/some/dir to keep the screenshots for a person to look at.
SHOTS = os.environ.get("ROLEUP_SCREENSHOTS")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is missing: run scripts/setup.sh"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium) -> Iterator[Any]:
    # No JavaScript: the page must work without it.
    viewport = {"width": 900, "height": 1000}
    context = chromium.new_context(java_script_enabled=False, viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def moto_iam(aws):
    aws.create_group(GroupName="developers")
    aws.update_account_password_policy(
        MinimumPasswordLength=12, RequireNumbers=True, RequireSymbols=True
    )
    return aws


@pytest.fixture
def invite(roleup, live, moto_iam):
    document = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:List*",'
    document += ' "Resource": "*"}]}'
    policy = moto_iam.create_policy(PolicyName="ReadOnlyDocs", PolicyDocument=document)
    return make_invite(
        roleup.core,
        add_integration(roleup.core),
        groups=["developers"],
        policies=[policy["Policy"]["Arn"]],
    )


def link(live, token: str) -> str:
    return f"{live.url}/invite/{token}"


def shot(page, name: str, tmp_path: Path) -> None:
    target = Path(SHOTS) if SHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"{name}.png"), full_page=True)


def requests_of(core) -> list[Request]:
    with core.sessions() as s:
        return list(s.scalars(select(Request)))


# --- the happy path ----------------------------------------------------------------------------
def test_the_invitee_opens_the_link_fills_the_form_and_sees_the_confirmation(
    page, live, roleup, invite, tmp_path
):
    response = page.goto(link(live, invite.token))
    assert response.status == 200
    assert page.locator("h1").inner_text() == "Choose your AWS sign-in"
    policy = page.get_by_role("list", name="Password policy").inner_text()
    assert "At least 12 characters" in policy
    assert "At least one number" in policy and "At least one symbol" in policy
    assert "developers" in page.locator("dl.preset").inner_text()
    assert "ReadOnlyDocs" in page.locator("dl.preset").inner_text()
    shot(page, "invite-form", tmp_path)

    page.get_by_label("Username").fill("new.bie")
    page.get_by_label("Initial password", exact=True).fill(GOOD_PASSWORD)
    page.get_by_label("Confirm initial password").fill(GOOD_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Send for approval").click()

    assert page.locator("h1").inner_text() == "Request sent"
    body = page.locator("main").inner_text()
    assert "new.bie" in body and "waiting for approval" in body
    assert GOOD_PASSWORD not in page.content()
    shot(page, "invite-done", tmp_path)

    (request,) = requests_of(roleup.core)
    assert (request.kind, request.state) == ("invite_onboard", "pending")
    assert request.payload["username"] == "new.bie"
    assert rows_containing(roleup.core.engine, GOOD_PASSWORD) == []

    # The link works once.
    again = page.goto(link(live, invite.token))
    assert again.status == 410
    assert page.locator("h1").inner_text() == "Invite already used"


# --- bad answers ------------------------------------------------------------------------------
def test_a_weak_password_is_shown_next_to_its_field_and_the_form_is_kept(
    page, live, roleup, invite, tmp_path
):
    page.goto(link(live, invite.token))
    page.get_by_label("Username").fill("newbie")
    page.get_by_label("Initial password", exact=True).fill("weakpass")
    page.get_by_label("Confirm initial password").fill("weakpass")
    with page.expect_navigation():
        page.get_by_role("button", name="Send for approval").click()

    error = page.locator("#password-error")
    assert "does not meet the policy" in error.inner_text()
    assert "at least 12 characters" in error.inner_text()
    assert page.get_by_label("Initial password", exact=True).get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Username").input_value() == "newbie"
    assert page.get_by_label("Initial password", exact=True).input_value() == ""
    assert "weakpass" not in page.content()
    shot(page, "invite-weak-password", tmp_path)
    assert requests_of(roleup.core) == []


def test_a_taken_username_is_shown_next_to_its_field(page, live, roleup, invite, moto_iam):
    moto_iam.create_user(UserName="alice")
    page.goto(link(live, invite.token))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Initial password", exact=True).fill(GOOD_PASSWORD)
    page.get_by_label("Confirm initial password").fill(GOOD_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Send for approval").click()
    assert page.locator("#username-error").inner_text() == (
        "That username is taken. Choose another one."
    )
    assert requests_of(roleup.core) == []


# --- bad links ----------------------------------------------------------------------------------
def test_an_unknown_link_shows_not_found(page, live, invite, tmp_path):
    response = page.goto(link(live, "A" * 43))
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Invite not found"
    assert "prod" not in page.content()
    shot(page, "invite-not-found", tmp_path)


def test_an_expired_link_says_it_expired(page, live, roleup, invite, tmp_path):
    with roleup.core.sessions.begin() as s:
        row = s.get(Invite, invite.invite_id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(minutes=1)
    response = page.goto(link(live, invite.token))
    assert response.status == 410
    assert page.locator("h1").inner_text() == "Invite expired"
    assert "Ask the person who sent it for a new one" in page.locator("main").inner_text()
    shot(page, "invite-expired", tmp_path)


# --- CSRF and framing ----------------------------------------------------------------------------
def test_a_form_sent_without_our_cookie_is_refused(page, live, roleup, invite):
    page.goto(link(live, invite.token))
    page.context.clear_cookies()
    page.get_by_label("Username").fill("newbie")
    page.get_by_label("Initial password", exact=True).fill(GOOD_PASSWORD)
    page.get_by_label("Confirm initial password").fill(GOOD_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Send for approval").click()
    assert page.locator("h1").inner_text() == "Please reload the page"
    assert requests_of(roleup.core) == []
    with roleup.core.sessions() as s:
        assert s.get(Invite, invite.invite_id).used_at is None


def test_the_page_refuses_to_be_framed_by_another_site(chromium, live, invite):
    context = chromium.new_context()
    try:
        framing = context.new_page()
        # set_content returns after the load event, which waits for the iframe to settle.
        framing.set_content(f'<iframe id="f" src="{link(live, invite.token)}"></iframe>')
        frames = [f for f in framing.frames if f != framing.main_frame]
        assert frames, "the iframe was not created"
        # Chromium blocks the frame (X-Frame-Options / frame-ancestors): no form is shown in it.
        framed = frames[0]
        assert "Choose your AWS sign-in" not in framed.content()
    finally:
        context.close()
