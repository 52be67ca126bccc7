"""The HTTP surface: Slack's one Request URL, health and readiness, metrics and the invite page."""

from __future__ import annotations

import logging
import re

from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from slack_bolt import App
from slack_bolt.adapter.flask import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier
from werkzeug.middleware.proxy_fix import ProxyFix

from bot.invite_page import create_invite_blueprint
from bot.metrics import CONTENT_TYPE, bearer_matches
from bot.readiness import readiness
from bot.services.container import Core
from storage.db import StoreUnavailable, check_store

logger = logging.getLogger(__name__)
_SLACK_TIMESTAMP = re.compile(r"[0-9]{1,12}")
MAX_SLACK_BODY = 1024 * 1024  # Slack payloads are far smaller; refuse anything bigger early.


def create_web(bolt: App, core: Core) -> Flask:
    web = Flask("roleup")
    web.config["MAX_CONTENT_LENGTH"] = MAX_SLACK_BODY
    if core.settings.trusted_proxies:
        # Only the addresses our own proxies appended are believed: the invite page's rate
        # limit is per client address, and a client can write any X-Forwarded-For it likes.
        web.wsgi_app = ProxyFix(web.wsgi_app, x_for=core.settings.trusted_proxies)  # type: ignore[method-assign]
    handler = SlackRequestHandler(bolt)
    web.register_blueprint(create_invite_blueprint(core))

    @web.post("/slack/events")
    def slack_events() -> ResponseReturnValue:
        if not is_from_slack(core):
            return jsonify(error="invalid request"), 401
        return handler.handle(request)

    @web.get("/healthz")
    def healthz() -> ResponseReturnValue:
        try:
            check_store(core.engine)
        except StoreUnavailable:
            return jsonify(status="unavailable", database="unreachable"), 503
        return jsonify(status="ok", database="ok"), 200

    @web.get("/readyz")
    def readyz() -> ResponseReturnValue:
        token = core.settings.metrics_token
        ready, body = readiness(core, detail=token is None or has_bearer(token))
        return jsonify(body), 200 if ready else 503

    @web.get("/metrics")
    def metrics() -> ResponseReturnValue:
        token = core.settings.metrics_token
        if token is not None and not has_bearer(token):
            answer = jsonify(error="a bearer token is required")
            return answer, 401, {"WWW-Authenticate": 'Bearer realm="metrics"'}
        return Response(core.metrics.render(), mimetype=CONTENT_TYPE)

    return web


def has_bearer(token: str) -> bool:
    """True if the request carries `Authorization: Bearer <token>` (compared in constant time)."""
    return bearer_matches(request.headers.get("Authorization"), token)


def is_from_slack(core: Core) -> bool:
    """Verify the signature here, before Bolt does, so a refusal never reaches Bolt's own.

    Bolt logs the whole body of a request it refuses, and a genuine modal submission that
    arrives late (clock skew, a slow retry) carries a password; slack_sdk's verifier also
    answers 500 with a stack trace for a timestamp that is text or too big for a float.
    """
    secret = core.settings.slack_signing_secret
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    if not secret or not _SLACK_TIMESTAMP.fullmatch(timestamp):
        return False
    verifier = SignatureVerifier(secret)
    valid = verifier.is_valid(
        request.get_data(), timestamp, request.headers.get("X-Slack-Signature", "")
    )
    if not valid:
        logger.info("refused a request to /slack/events: bad or stale signature")
    return valid
