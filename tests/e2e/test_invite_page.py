"""The public invite page over real HTTP: form, answers, bad tokens, CSRF, security headers."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from bot.services import invites
from storage.models import Invite, Request, utcnow
from tests.support.invite_kit import GOOD_PASSWORD, make_invite
from tests.support.secrets import rows_containing
from tests.support.seed import add_integration

pytestmark = pytest.mark.moto_server


@pytest.fixture
def invite(roleup, aws):
    aws.create_group(GroupName="developers")
    return make_invite(roleup.core, add_integration(roleup.core), groups=["developers"])


def page_url(live, token: str) -> str:
    return f"{live.url}/invite/{token}"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "the form has no CSRF token"
    return found.group(1)


def open_form(live, token: str) -> tuple[requests.Session, str]:
    browser = requests.Session()
    response = browser.get(page_url(live, token), timeout=10)
    assert response.status_code == 200, response.text
    return browser, csrf_of(response.text)


def send(live, token, browser, csrf, **fields):
    data = {"csrf_token": csrf, "username": "newbie", "password": GOOD_PASSWORD}
    data["confirm"] = fields.get("password", GOOD_PASSWORD)
    data.update(fields)
    return browser.post(page_url(live, token), data=data, timeout=20)


def requests_made(core) -> int:
    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(Request)) or 0


def used_at(core, invite_id):
    with core.sessions() as s:
        row = s.get(Invite, invite_id)
        return row.used_at if row else None


def assert_secure_headers(response: requests.Response) -> None:
    h = response.headers
    assert h["Cache-Control"] == "no-store"
    assert h["X-Frame-Options"] == "DENY"
    assert h["Referrer-Policy"] == "no-referrer"
    assert h["X-Content-Type-Options"] == "nosniff"
    csp = h["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self'" in csp
    assert "script-src" not in csp and "unsafe-inline" not in csp
    assert h["Content-Type"].startswith("text/html")


# --- the form ---------------------------------------------------------------------------------
def test_the_form_shows_labelled_fields_the_preset_and_the_policy(live, invite, aws):
    aws.update_account_password_policy(MinimumPasswordLength=14, RequireSymbols=True)
    response = requests.get(page_url(live, invite.token), timeout=10)
    assert response.status_code == 200
    page = response.text
    assert '<label for="username">Username</label>' in page
    assert '<label for="password">Initial password</label>' in page
    assert '<label for="confirm">Confirm initial password</label>' in page
    assert "developers" in page and "prod" in page
    assert "At least 14 characters" in page
    assert "At least one symbol" in page
    assert "<script" not in page
    assert_secure_headers(response)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/invite/" in cookie


def test_a_good_answer_files_a_pending_request_and_confirms(live, roleup, invite, slack_api):
    browser, csrf = open_form(live, invite.token)
    response = send(live, invite.token, browser, csrf, username="new.bie")
    assert response.status_code == 200, response.text
    assert "Request sent" in response.text
    assert "new.bie" in response.text and "waiting for approval" in response.text
    assert GOOD_PASSWORD not in response.text
    assert_secure_headers(response)
    with roleup.core.sessions() as s:
        request = s.scalars(select(Request)).one()
    assert (request.kind, request.state) == ("invite_onboard", "pending")
    assert request.payload["username"] == "new.bie"
    assert used_at(roleup.core, invite.invite_id) is not None
    assert rows_containing(roleup.core.engine, GOOD_PASSWORD) == []
    # Approvers are asked in Slack; the password never goes there.
    slack_api.wait_for("chat.postMessage", where=lambda c: c.params.get("channel") == "CAPPROVALS")
    assert GOOD_PASSWORD not in slack_api.all_text()


def test_after_the_answer_the_link_is_gone_with_410(live, roleup, invite):
    browser, csrf = open_form(live, invite.token)
    assert send(live, invite.token, browser, csrf).status_code == 200
    again = requests.get(page_url(live, invite.token), timeout=10)
    assert again.status_code == 410
    assert "already used" in again.text and "expired" not in again.text
    assert_secure_headers(again)
    resent = send(live, invite.token, browser, csrf, username="other")
    assert resent.status_code == 410
    assert requests_made(roleup.core) == 1


# --- bad answers keep the form ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"username": "has space"}, "username", "1 to 64 characters"),
        ({"username": ""}, "username", "Choose a username."),
        ({"password": "weak"}, "password", "does not meet the policy"),
        ({"confirm": "Not-The-Same-1"}, "confirm", "The two passwords are not the same."),
    ],
)
def test_a_bad_answer_is_shown_next_to_its_field_and_changes_nothing(
    live, roleup, invite, fields, field, message
):
    browser, csrf = open_form(live, invite.token)
    response = send(live, invite.token, browser, csrf, **fields)
    assert response.status_code == 422
    shown = rf'<p class="error" id="{field}-error" role="alert">([^<]*)</p>'
    error = re.search(shown, response.text)
    assert error and message in error.group(1)
    assert f'id="{field}"' in response.text
    for secret in (GOOD_PASSWORD, "weak", "Not-The-Same-1"):
        assert secret not in response.text
    if fields.get("username") == "has space":
        assert 'value="has space"' in response.text  # the username is kept
    assert requests_made(roleup.core) == 0
    assert used_at(roleup.core, invite.invite_id) is None
    assert_secure_headers(response)


def test_a_taken_username_is_shown_next_to_the_field(live, roleup, invite, aws):
    aws.create_user(UserName="taken")
    browser, csrf = open_form(live, invite.token)
    response = send(live, invite.token, browser, csrf, username="taken")
    assert response.status_code == 422
    assert 'id="username-error" role="alert">That username is taken.' in response.text
    assert 'value="taken"' in response.text
    assert requests_made(roleup.core) == 0


def test_the_username_is_escaped_when_kept(live, invite):
    browser, csrf = open_form(live, invite.token)
    response = send(live, invite.token, browser, csrf, username='"><script>x</script>')
    assert response.status_code == 422
    assert "<script>" not in response.text
    assert "&#34;&gt;&lt;script&gt;" in response.text


# --- bad links --------------------------------------------------------------------------------
def test_an_unknown_token_is_404_and_says_nothing_more(live, invite):
    response = requests.get(page_url(live, invites.new_token()), timeout=10)
    assert response.status_code == 404
    assert "not valid" in response.text
    assert "prod" not in response.text and "expired" not in response.text
    assert_secure_headers(response)


def test_a_tampered_token_is_404(live, invite):
    tampered = invite.token[:-2] + ("AA" if not invite.token.endswith("AA") else "BB")
    assert requests.get(page_url(live, tampered), timeout=10).status_code == 404
    assert requests.get(page_url(live, invite.token[:-1]), timeout=10).status_code == 404
    assert requests.post(page_url(live, tampered), data={}, timeout=10).status_code == 404


def test_an_expired_link_is_410_and_says_expired(live, roleup):
    created = make_invite(roleup.core, add_integration(roleup.core))
    with roleup.core.sessions.begin() as s:
        row = s.get(Invite, created.invite_id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
    response = requests.get(page_url(live, created.token), timeout=10)
    assert response.status_code == 410
    assert "expired" in response.text and "already used" not in response.text
    posted = requests.post(page_url(live, created.token), data={"username": "x"}, timeout=10)
    assert posted.status_code == 410
    assert requests_made(roleup.core) == 0


# --- CSRF -------------------------------------------------------------------------------------
def test_a_post_without_the_cookie_is_refused_with_400(live, roleup, invite):
    _browser, csrf = open_form(live, invite.token)
    stranger = requests.Session()  # another site's form: no cookie of ours
    response = send(live, invite.token, stranger, csrf)
    assert response.status_code == 400
    assert "Nothing was changed" in response.text
    assert requests_made(roleup.core) == 0
    assert used_at(roleup.core, invite.invite_id) is None
    assert_secure_headers(response)


def test_a_post_with_a_forged_token_is_refused_with_400(live, roleup, invite):
    browser, csrf = open_form(live, invite.token)
    forged = "0" * len(csrf)
    assert send(live, invite.token, browser, forged).status_code == 400
    assert send(live, invite.token, browser, "").status_code == 400
    assert requests_made(roleup.core) == 0


def test_a_form_token_of_another_invite_does_not_fit(live, roleup, invite):
    other = make_invite(roleup.core, add_integration(roleup.core, name="other"))
    browser, csrf_other = open_form(live, other.token)
    browser.get(page_url(live, invite.token), timeout=10)
    assert send(live, invite.token, browser, csrf_other).status_code == 400
    assert requests_made(roleup.core) == 0


def test_the_page_cannot_be_sent_huge_bodies(live, roleup, invite):
    browser, csrf = open_form(live, invite.token)
    response = send(live, invite.token, browser, csrf, username="x" * 20_000)
    assert response.status_code == 413
    assert requests_made(roleup.core) == 0


# --- after the page: approval in Slack creates the account --------------------------------------
def test_a_web_answer_approved_in_slack_creates_the_account_and_erases_the_password(
    live, roleup, invite, slack, slack_api, aws
):
    from tests.support.approvals import click, wait_until

    browser, csrf = open_form(live, invite.token)
    assert send(live, invite.token, browser, csrf, username="webbie").status_code == 200
    with roleup.core.sessions() as s:
        request = s.scalars(select(Request)).one()
    click(slack, "approval_approve", request.id, user="UAPPROVER")

    def state() -> str:
        with roleup.core.sessions() as s:
            row = s.get(Request, request.id)
            return row.state if row else "gone"

    wait_until(lambda: state() == "done")
    with roleup.core.sessions() as s:
        assert s.get(Request, request.id).secret_ciphertext is None
    assert aws.get_user(UserName="webbie")["User"]["UserName"] == "webbie"
    aws.get_login_profile(UserName="webbie")
    groups = aws.list_groups_for_user(UserName="webbie")["Groups"]
    assert [g["GroupName"] for g in groups] == ["developers"]
    slack_api.wait_for(
        "chat.postMessage",
        where=lambda c: c.params["channel"] == "UNEWBIE" and "webbie" in c.params["text"],
    )
    assert rows_containing(roleup.core.engine, GOOD_PASSWORD) == []
    assert GOOD_PASSWORD not in slack_api.all_text()


def test_when_aws_does_not_answer_the_page_says_so_and_changes_nothing(roleup, live, invite):
    from bot.services.aws import AwsClients
    from tests.support.postgres import free_port

    roleup.core.aws = AwsClients(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    response = requests.get(page_url(live, invite.token), timeout=60)
    assert response.status_code == 503
    assert "AWS did not answer. Nothing was changed" in response.text
    assert_secure_headers(response)
    assert used_at(roleup.core, invite.invite_id) is None
