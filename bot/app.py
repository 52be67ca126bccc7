"""The one place that builds the Bolt app, the Slack client, the store and the services."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from flask import Flask
from slack_bolt import App
from slack_sdk import WebClient

from bot.services.aws import AwsClients
from bot.services.container import Core
from bot.settings import Settings
from bot.slack import client as slack_client
from bot.slack.people import SlackPeople
from storage.crypto import SecretBox
from storage.db import make_engine, make_sessionmaker

logger = logging.getLogger(__name__)


@dataclass
class RoleUp:
    """Everything `roleup serve` and `roleup socket` run."""

    core: Core
    slack: WebClient
    bolt: App
    web: Flask
    executor: ThreadPoolExecutor

    @property
    def settings(self) -> Settings:
        return self.core.settings

    def close(self) -> None:
        scheduler = self.core.extras.get("scheduler")
        if scheduler is not None:
            scheduler.shutdown()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.core.engine.dispose()


def create_core(settings: Settings) -> Core:
    """The store, the secrets box and the AWS clients, without Slack (for the CLI)."""
    engine = make_engine(settings.database_url)
    box = SecretBox(settings.encryption_keys) if settings.encryption_keys else None
    return Core(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        box=box,
        aws=AwsClients(settings.aws_endpoint_url),
    )


def create_slack_client(settings: Settings) -> WebClient:
    """The one client every Slack call of this process goes through (bot.slack.client)."""
    return slack_client.create_slack_client(settings.slack_bot_token, settings.slack_api_url)


def create_app(settings: Settings) -> RoleUp:
    """Build the whole bot from settings; nothing is started and nothing connects yet."""
    from bot.web import create_web
    from handlers import register_all

    core = create_core(settings)
    slack = create_slack_client(settings)
    # Bounded: a burst of commands queues here instead of spawning unbounded threads.
    executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="roleup-listener")
    bolt = App(
        token=settings.slack_bot_token,
        signing_secret=settings.slack_signing_secret,
        client=slack,
        # auth.test runs on the first request instead, so building the app never connects.
        token_verification_enabled=False,
        request_verification_enabled=True,
        listener_executor=executor,
        logger=logging.getLogger("roleup.bolt"),
    )
    core.extras["slack"] = slack
    core.people = SlackPeople(slack)
    _attach_scheduler(core)
    register_all(bolt, core)
    web = create_web(bolt, core)
    return RoleUp(core=core, slack=slack, bolt=bolt, web=web, executor=executor)


def _attach_scheduler(core: Core) -> None:
    """Build (never start) the job scheduler; serve/socket call extras["start"] once."""
    from bot.scheduler import build_scheduler

    scheduler = build_scheduler(core)
    if scheduler is not None:
        core.extras["scheduler"] = scheduler
        core.extras["start"] = scheduler.start
