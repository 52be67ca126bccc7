"""`roleup serve`: the Flask app under gunicorn, one app (and scheduler) per worker."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from bot.settings import Settings


class RoleUpServer(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Built in each worker after the fork: no engine, pool or thread crosses a fork.
        from bot.app import create_app

        roleup = create_app(self.settings)
        start = roleup.core.extras.get("start")
        if callable(start):
            start()
        return roleup.web


def serve(settings: Settings, *, workers: int, threads: int, bind: str | None = None) -> None:
    options = {
        "bind": bind or f"0.0.0.0:{settings.port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 60,
        "graceful_timeout": 20,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
    }
    RoleUpServer(settings, options).run()
