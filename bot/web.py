"""The HTTP surface: Slack's one Request URL, the health check and the public invite page."""

from __future__ import annotations

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from slack_bolt import App
from slack_bolt.adapter.flask import SlackRequestHandler

from bot.services.container import Core
from storage.db import StoreUnavailable, check_store

MAX_SLACK_BODY = 1024 * 1024  # Slack payloads are far smaller; refuse anything bigger early.


def create_web(bolt: App, core: Core) -> Flask:
    web = Flask("roleup")
    web.config["MAX_CONTENT_LENGTH"] = MAX_SLACK_BODY
    handler = SlackRequestHandler(bolt)

    @web.post("/slack/events")
    def slack_events() -> ResponseReturnValue:
        return handler.handle(request)

    @web.get("/healthz")
    def healthz() -> ResponseReturnValue:
        try:
            check_store(core.engine)
        except StoreUnavailable:
            return jsonify(status="unavailable", database="unreachable"), 503
        return jsonify(status="ok", database="ok"), 200

    return web
