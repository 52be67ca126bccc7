"""Slack surfaces, one package per feature, each exporting register(app, core).

Features never import each other; what several share lives in bot/slack."""

from __future__ import annotations

from slack_bolt import App

from bot.services.container import Core


def register_all(app: App, core: Core) -> None:
    """Register the middlewares, then every feature's listeners (create_app built what they
    use: the delivery log, the response pool, the Slack client)."""
    from bot.slack.commands import checked_within
    from bot.slack.logsafe import install_log_guards
    from bot.slack.respond import PooledResponses
    from bot.slack.retry_guard import RetryGuard
    from handlers import (
        accounts,
        admin,
        approvals,
        grants,
        groups,
        home,
        invite,
        offboard,
        onboard,
        reviews,
    )

    if core.deliveries is None or core.responses is None:
        raise RuntimeError("create_app builds the delivery log and the response pool first")
    # Before any listener: a Slack retry of work already started is answered and dropped; its
    # claim runs in the after-ack pool, so a stalled store never holds the retry's ack.
    guard = RetryGuard(
        core.sessions,
        core.deliveries,
        pool=core.after_ack,
        within=checked_within,
        dispatch=app.dispatch,
    )
    app.use(guard)
    # respond() over kept-alive connections instead of a new one per answer, to Slack only.
    app.use(PooledResponses(core.responses, core.settings.slack_api_url))
    # Library DEBUG logs carry request bodies (passwords, keys): never let them out.
    install_log_guards()
    accounts.register(app, core)
    groups.register(app, core)
    # Before /onboard's: its listener takes only `/onboard invite ...`.
    invite.register(app, core)
    offboard.register(app, core)
    onboard.register(app, core)
    # Before /roleup's router: each takes only its own subcommands (`breakglass`, `review`).
    grants.register(app, core)
    reviews.register(app, core)
    admin.register(app, core)
    approvals.register(app, core)
    home.register(app, core)
