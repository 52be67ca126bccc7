"""Slack surfaces: commands, views, actions and events, each exporting register(app, core)."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register_all(app: App, core: Core) -> None:
    from bot.slack.logsafe import install_log_guards
    from bot.slack.respond import make_respond_middleware, response_pool
    from bot.slack.retry_guard import DeliveryLog, make_retry_guard
    from handlers import actions, commands, events, reviews, views

    # Before any listener: a Slack retry of work already started is answered and dropped.
    deliveries = core.extras.setdefault("deliveries", DeliveryLog(core.sessions))
    app.use(make_retry_guard(core.sessions, deliveries))
    # respond() over kept-alive connections instead of a new one per answer.
    pool = core.extras.setdefault("responses", response_pool())
    app.use(make_respond_middleware(pool))
    # Library DEBUG logs carry request bodies (passwords, keys): never let them out.
    install_log_guards()
    commands.register(app, core)
    views.register(app, core)
    actions.register(app, core)
    events.register(app, core)
    reviews.register(app, core)
