"""The one place that builds the Bolt app, the Slack client, the store and the services.

Slack and the web framework are imported where the Slack app is built: the CLI's commands need
only `create_core`, and a `roleup sync` should not pay for loading Bolt and Flask."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.metrics import Metrics, StoreCollector, watch_request_moves
from bot.services.aws import AwsClients
from bot.services.container import Core
from bot.settings import Settings
from bot.slack.acked_work import AckedPool, stop_pools
from storage.crypto import SecretBox
from storage.db import make_engine, make_sessionmaker

if TYPE_CHECKING:
    from flask import Flask
    from slack_bolt import App
    from slack_sdk import WebClient

    from bot.scheduler import JobScheduler

logger = logging.getLogger(__name__)
# As many as a worker's gunicorn threads (`roleup serve --threads`, 8): each request thread
# waiting on a listing made here (bot.slack.commands.read_only_command) has a thread for it.
AFTER_ACK_THREADS = 8
DECISION_THREADS = 32
# How long a stop waits for the last Slack deliveries' keys to reach the store: a stalled store
# (what leaves work running past the grace) must not hold the exit past the spare second that
# bot.server leaves after the stop's messages. A key not written: a retry of it may run again.
KEYS_WAIT_SECONDS = 0.5


@dataclass
class RoleUp:
    """Everything `roleup serve` and `roleup socket` run."""

    core: Core
    slack: WebClient
    bolt: App
    web: Flask
    executor: AckedPool

    @property
    def settings(self) -> Settings:
        return self.core.settings

    def close(self, grace: float = 0.0) -> bool:
        """Stop: the pools take no new work, and what was acked and is queued or running gets
        `grace` seconds to end; past them, what never started is not run and its people are told
        (bot.slack.acked_work); a scheduled run still under way then is left to be taken over. True
        if nothing, acked or scheduled, was left unfinished."""
        core = self.core
        deadline = time.monotonic() + grace
        if grace > 0:
            logger.info("stopping: the work already acked gets up to %.1fs to end", grace)
        if core.scheduler is not None:
            core.scheduler.shutdown()
        # The listeners first: until they end, they may hand work to the other two.
        pools = (self.executor, core.after_ack, core.decisions)
        finished = stop_pools([p for p in pools if isinstance(p, AckedPool)], deadline)
        if core.scheduler is not None and not core.scheduler.drain(
            max(0.0, deadline - time.monotonic())
        ):
            # As `roleup worker` does: a normal exit would wait for the run's thread until the
            # platform's kill; the run's claim is taken over by another process.
            logger.warning("stopping with runs under way; another process takes them over")
            finished = False
        core.aws.pools.shutdown(wait=False)  # the threads kept for AWS calls
        if core.deliveries is not None:
            _within(core.deliveries.close, KEYS_WAIT_SECONDS, "the last Slack deliveries' keys")
        if core.responses is not None:
            core.responses.clear()
        self.core.engine.dispose()
        return finished


def _within(step: Callable[[], object], seconds: float, what: str) -> None:
    """`step()` in a daemon thread, waited for `seconds`: past them it is left to the exit."""
    thread = threading.Thread(target=step, name="roleup-stop-step", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        logger.warning("stopping: %s were not written in %.1fs (the store is slow)", what, seconds)


def create_core(settings: Settings, metrics: Metrics | None = None) -> Core:
    """The store, the secrets box and the AWS clients, without Slack (for the CLI), counting
    into `metrics` (a new Metrics by default; a CLI command hands in bot.metrics.Uncounted)."""
    engine = make_engine(settings.database_url)
    box = SecretBox(settings.encryption_keys) if settings.encryption_keys else None
    sessions = make_sessionmaker(engine)
    metrics = Metrics() if metrics is None else metrics
    metrics.add_collector(StoreCollector(sessions))
    watch_request_moves(sessions, metrics)
    return Core(
        settings=settings,
        engine=engine,
        sessions=sessions,
        box=box,
        aws=AwsClients(settings.aws_endpoint_url, metrics=metrics),
        metrics=metrics,
    )


def create_slack_client(settings: Settings, metrics: Metrics) -> WebClient:
    """The one client every Slack call of this process goes through (bot.slack.client)."""
    from bot.slack import client as slack_client

    return slack_client.create_slack_client(
        settings.slack_bot_token, settings.slack_api_url, metrics
    )


def create_app(settings: Settings) -> RoleUp:
    """Build the whole bot from settings; nothing is started and nothing connects yet."""
    from slack_bolt import App

    from bot.scheduler import build_scheduler
    from bot.slack.approval_messages import SlackApprovalNotifier
    from bot.slack.errors import keep_sent_acks
    from bot.slack.matching import match_by_body
    from bot.slack.people import SlackPeople
    from bot.slack.respond import response_pool
    from bot.slack.retry_guard import DeliveryLog
    from bot.web import create_web
    from handlers import register_all

    core = create_core(settings)
    slack = create_slack_client(settings, core.metrics)
    # Bolt's lazy listeners only (RoleUp has none): listeners run in the request's thread.
    executor = AckedPool(max_workers=4, thread_name_prefix="roleup-listener")
    bolt_logger = logging.getLogger("roleup.bolt")
    bolt_logger.addFilter(_without_unused_token_warning)
    bolt = App(
        # The token is the client's (Bolt still reads SLACK_BOT_TOKEN itself, hence the filter).
        signing_secret=settings.slack_signing_secret,
        client=slack,
        # auth.test runs on the first request instead, so building the app never connects.
        token_verification_enabled=False,
        request_verification_enabled=True,
        # Each listener runs in the request's thread and its ack is sent when it returns: no
        # hand-off to a listener pool and no 10 ms polling for the ack (bench/ack.py). So every
        # listener returns right after its ack; what follows runs on core.after_ack or
        # core.decisions (bot.slack.errors.run_after_ack).
        process_before_response=True,
        listener_executor=executor,
        logger=bolt_logger,
    )
    keep_sent_acks(bolt)
    core.slack = slack
    # Work that follows an ack (bot.slack.errors.run_after_ack): off the request's thread, so
    # a burst of it never keeps the next ack waiting. Work that calls AWS goes to decisions.
    core.after_ack = AckedPool(max_workers=AFTER_ACK_THREADS, thread_name_prefix="roleup-after-ack")
    core.decisions = AckedPool(max_workers=DECISION_THREADS, thread_name_prefix="roleup-decision")
    core.responses = response_pool()
    core.deliveries = DeliveryLog(core.sessions)
    core.people = SlackPeople(slack)
    core.approvals_notifier = SlackApprovalNotifier(slack, core.people)
    # Built, never started: serve and socket call core.scheduler.start() once.
    core.scheduler = build_scheduler(core)
    register_all(bolt, core)
    # Once every listener is there: each request tries them in turn (bot.slack.matching).
    match_by_body(bolt)
    web = create_web(bolt, core)
    return RoleUp(core=core, slack=slack, bolt=bolt, web=web, executor=executor)


def _without_unused_token_warning(record: logging.LogRecord) -> bool:
    """Bolt warns at every start that `token` is unused beside a client: by design here (the
    client carries the token), so the warning says nothing and is dropped."""
    return "`token` will be unused" not in record.getMessage()


def create_worker(settings: Settings) -> JobScheduler:
    """What `roleup worker` runs: the scheduler over the store, with the Slack client its jobs
    post through (expiry notices, reminders, failures); no Bolt app, web server or listener."""
    from bot.scheduler import JobScheduler
    from bot.slack.approval_messages import SlackApprovalNotifier
    from bot.slack.people import SlackPeople

    core = create_core(settings)
    core.slack = create_slack_client(settings, core.metrics)
    core.people = SlackPeople(core.slack)
    # Housekeeping expires and reminds pending requests: their messages are Slack's to update.
    core.approvals_notifier = SlackApprovalNotifier(core.slack, core.people)
    core.scheduler = JobScheduler(core)
    return core.scheduler
