"""WSGI entry for servers other than `roleup serve`: `gunicorn 'bot.wsgi:build()'`."""

from __future__ import annotations

from flask import Flask


def build() -> Flask:
    from bot.app import create_app
    from bot.logging_setup import install_redaction
    from bot.settings import Settings

    # The host server owns the handlers; masking secrets in every record is still ours.
    install_redaction()
    settings = Settings.from_env()
    settings.require_http()
    roleup = create_app(settings)
    start = roleup.core.extras.get("start")
    if callable(start):
        start()
    return roleup.web
