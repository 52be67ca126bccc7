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
    if roleup.core.scheduler is not None:
        roleup.core.scheduler.start()
    return roleup.web
