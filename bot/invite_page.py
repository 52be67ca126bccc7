"""The public invite page, GET|POST /invite/<token>: a Flask blueprint registered by bot.web.

Works without JavaScript. Every response carries headers that keep the page (and the token in
its URL) out of caches, frames and Referer headers. The form is protected by a signed
double-submit token: a random nonce in an HttpOnly cookie, and in the form an HMAC of the
invite and that nonce, so another site can neither read nor forge it.

Anyone on the internet can reach it, so every request first passes a per-address rate limit
shared by all instances through the store (429 with Retry-After), and an invite takes at most
MAX_FAILED_ATTEMPTS wrong answers: then it is locked, answers like any invalid link, and its
creator is told in Slack.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Any

from flask import Blueprint, Response, make_response, render_template_string, request
from sqlalchemy.exc import SQLAlchemyError

from bot import invite_templates as html
from bot.logging_setup import SecretRegistryFull
from bot.notices import post
from bot.services import account_expiry, invites
from bot.services.container import Core
from bot.services.errors import AwsError, RoleUpError
from bot.services.iam import PasswordRules
from bot.services.rate_limit import RateLimiter, client_key
from bot.slack.blocks import section
from bot.slack.mrkdwn import escape

logger = logging.getLogger(__name__)

COOKIE = "roleup_invite_csrf"
MAX_FORM_BYTES = 16 * 1024  # three short fields; anything bigger is not our form


def security_headers(response: Response) -> Response:
    csp = (
        "default-src 'none'; "
        f"style-src {html.style_hash()}; "
        "img-src 'none'; "
        "form-action 'self'; "
        "frame-ancestors 'none'; "
        "base-uri 'none'"
    )
    response.headers["Content-Security-Policy"] = csp
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def csrf_key(core: Core) -> bytes:
    """A server key for form tokens, derived from the first encryption key (never stored)."""
    keys = core.settings.encryption_keys
    if not keys:
        raise RuntimeError("ROLEUP_ENCRYPTION_KEYS is required to serve invite pages")
    return hmac.new(keys[0].encode(), b"roleup invite form csrf v1", hashlib.sha256).digest()


def csrf_token(core: Core, token_hash: str, nonce: str) -> str:
    """The form's token: bound to this invite and to the browser's cookie nonce."""
    message = f"{token_hash}:{nonce}".encode()
    return hmac.new(csrf_key(core), message, hashlib.sha256).hexdigest()


def csrf_valid(core: Core, token_hash: str, nonce: str | None, sent: str | None) -> bool:
    if not nonce or not sent or len(nonce) > 100 or len(sent) > 100:
        return False
    return hmac.compare_digest(csrf_token(core, token_hash, nonce), sent)


def create_invite_blueprint(core: Core) -> Blueprint:
    page = Blueprint("invite", __name__)
    page.after_request(security_headers)
    limiter = RateLimiter(
        core.sessions,
        limit=core.settings.invite_rate_limit,
        window_seconds=core.settings.invite_rate_window_seconds,
    )

    @page.before_request
    def limit_rate() -> Response | None:
        # Before anything else, so that guessed tokens and floods are counted too. The address
        # is the peer's, or X-Forwarded-For's as far as ROLEUP_TRUSTED_PROXIES (ProxyFix) says;
        # an IPv6 client is its /64, which it can fill with addresses of its choosing.
        try:
            verdict = limiter.hit(f"invite:{client_key(request.remote_addr)}")
        except SQLAlchemyError:
            logger.exception("the invite rate limit could not reach the store")
            return _try_again(60)
        if verdict.allowed:
            return None
        response = _page(
            html.PROBLEM,
            429,
            title="Too many requests",
            message="This address sent too many requests. Wait a minute and try again.",
        )
        response.headers["Retry-After"] = str(verdict.retry_after)
        return response

    @page.get("/invite/<token>")
    def show(token: str) -> Response:
        try:
            invite = invites.open_invite(core, token)
            policy = invites.password_policy(
                core, invite.integration_id, actor=invites.invitee(invite)
            )
        except RoleUpError as exc:
            return _problem(exc)
        nonce = request.cookies.get(COOKIE) or secrets.token_urlsafe(24)
        response = _form(core, invite, policy, nonce, username="", errors={}, status=200)
        _set_cookie(core, response, nonce)
        return response

    @page.post("/invite/<token>")
    def submit(token: str) -> Response:
        try:
            invite = invites.open_invite(core, token)
        except RoleUpError as exc:
            return _problem(exc)
        if (request.content_length or 0) > MAX_FORM_BYTES:
            return _page(html.PROBLEM, 413, title="Too much data", message="Send the form only.")
        nonce = request.cookies.get(COOKIE)
        if not csrf_valid(core, invite.token_hash, nonce, request.form.get("csrf_token")):
            return _page(
                html.PROBLEM,
                400,
                title="Please reload the page",
                message="This form could not be checked (it is old, or was not sent from "
                "this page). Open the invite link again and resend it. Nothing was changed.",
            )
        try:
            invites.take_attempt(core, invite.id)
        except RoleUpError as exc:
            return _problem(exc)
        return _answer(core, invite, nonce or "")

    return page


def _answer(core: Core, invite: invites.OpenInvite, nonce: str) -> Response:
    """Check and file the answer; only a wrong answer keeps the attempt taken for it."""
    username = request.form.get("username", "")[:200]
    password = request.form.get("password", "")
    confirm = request.form.get("confirm", "")
    wrong = False
    try:
        created = invites.answer_invite(
            core, invite, username=username, password=password, confirm=confirm, via="web"
        )
    except invites.InviteAnswerInvalid as exc:
        wrong = True
        return _wrong_answer(core, invite, nonce, username, exc.errors)
    except SecretRegistryFull:
        logger.error("invite %s: too many secrets in flight to take a password", invite.id)
        return _try_again(60)
    except RoleUpError as exc:
        return _problem(exc)
    finally:
        if not wrong:
            invites.give_back_attempt(core, invite.id)
    logger.info("invite %s answered on the web: request %s", invite.id, created.id)
    return _page(
        html.DONE,
        200,
        title="Request sent",
        username=created.payload.get("username", username.strip()),
        integration=invite.integration,
        in_slack=bool(invite.slack_user_id),
    )


def _wrong_answer(
    core: Core, invite: invites.OpenInvite, nonce: str, username: str, errors: dict[str, str]
) -> Response:
    """The form again with its errors; at the last allowed wrong answer the invite is locked
    and its creator told (this answer still gets its errors, the next one a dead link)."""
    if invites.lock_if_exhausted(core, invite):
        _tell_creator_locked(core, invite)
    try:
        policy = invites.password_policy(core, invite.integration_id, actor=invites.invitee(invite))
    except RoleUpError as unreadable:
        return _problem(unreadable)
    return _form(core, invite, policy, nonce, username=username, errors=errors, status=422)


def _tell_creator_locked(core: Core, invite: invites.OpenInvite) -> None:
    who = f"<@{invite.slack_user_id}>" if invite.slack_user_id else "a new user"
    text = (
        f"Your invite for {who} to {invite.integration} was locked after "
        f"{invites.MAX_FAILED_ATTEMPTS} wrong answers on its web page. The link no longer "
        "works; send a new invite if it is still wanted."
    )
    body = (
        f":lock: Your invite for {who} to *{escape(invite.integration)}* was locked after "
        f"{invites.MAX_FAILED_ATTEMPTS} wrong answers on its web page. The link no longer "
        "works; send a new invite if it is still wanted."
    )
    post(core, invite.created_by, text, [section(body)])


def _try_again(seconds: int) -> Response:
    response = _page(
        html.PROBLEM,
        503,
        title="Try again in a minute",
        message="RoleUp is busy. Nothing was changed; try again shortly.",
    )
    response.headers["Retry-After"] = str(seconds)
    return response


def _form(
    core: Core,
    invite: invites.OpenInvite,
    policy: PasswordRules,
    nonce: str,
    *,
    username: str,
    errors: dict[str, str],
    status: int,
) -> Response:
    # The password is never put back into the page: only the username is kept.
    return _page(
        html.FORM,
        status,
        title="Choose your AWS sign-in",
        invite=invite,
        policy_names=[arn.rsplit("/", 1)[-1] for arn in invite.policies],
        expires=invite.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
        account_expires=(
            account_expiry.shown(invite.account_expires) if invite.account_expires else None
        ),
        csrf=csrf_token(core, invite.token_hash, nonce),
        username=username,
        errors=errors,
        rules=invites.policy_rules(policy),
        max_password=invites.MAX_PASSWORD,
    )


def _problem(exc: RoleUpError) -> Response:
    if isinstance(exc, invites.InviteNotFound):
        return _page(html.PROBLEM, 404, title="Invite not found", message=exc.user_message)
    if isinstance(exc, invites.InviteGone):
        title = "Invite expired" if exc.reason == "expired" else "Invite already used"
        return _page(html.PROBLEM, 410, title=title, message=exc.user_message)
    if isinstance(exc, AwsError):
        return _page(
            html.PROBLEM,
            503,
            title="Try again in a minute",
            message="AWS did not answer. Nothing was changed; try again shortly.",
        )
    return _page(
        html.PROBLEM, 409, title="This invite cannot be answered", message=exc.user_message
    )


def _page(template: str, status: int, **context: Any) -> Response:
    body = render_template_string(template, style=html.STYLE, **context)
    response = make_response(body, status)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    return response


def _set_cookie(core: Core, response: Response, nonce: str) -> None:
    response.set_cookie(
        COOKIE,
        nonce,
        max_age=int(core.settings.invite_ttl_hours * 3600),
        path="/invite/",
        secure=core.settings.public_url.startswith("https://"),
        httponly=True,
        samesite="Lax",
    )
