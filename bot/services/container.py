"""What every service and handler is handed: built once by bot.app, never at import."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.metrics import Metrics
from bot.services.aws import AwsClients
from bot.services.people import NoDirectory, People
from bot.settings import Settings
from storage.crypto import SecretBox

if TYPE_CHECKING:  # services never import Slack, the web or the scheduler at runtime
    from slack_sdk import WebClient

    from bot.scheduler import JobScheduler
    from bot.services.approvals import ApprovalNotifier
    from bot.slack.respond import ResponsePool
    from bot.slack.retry_guard import DeliveryLog


@dataclass
class Core:
    """The store, the key box and the AWS client factory: enough for the CLI and the jobs.

    The Slack parts are None in a process without Slack (the CLI); create_app sets them all
    before any listener is registered."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    box: SecretBox | None
    aws: AwsClients
    # What /metrics reports; create_core hands the same one to the AWS clients and the store.
    metrics: Metrics = field(default_factory=Metrics)
    # Who people are (Slack standing, user groups); the Slack app installs its directory.
    people: People = field(default_factory=NoDirectory)
    # The one Slack client of the process (bot.slack.client).
    slack: WebClient | None = None
    # Work that follows an ack (bot.slack.errors.run_after_ack), off the request's thread.
    after_ack: ThreadPoolExecutor | None = None
    # Work after an ack that calls AWS (Approve, Deny and Retry clicks, commands and modals
    # that change IAM; calls that may hang for minutes), apart from after_ack, so it never
    # keeps another command's answer waiting.
    decisions: ThreadPoolExecutor | None = None
    # The kept-alive connections respond() posts through (bot.slack.respond).
    responses: ResponsePool | None = None
    # The keys of Slack deliveries already started, so a retry is dropped (bot.slack.retry_guard).
    deliveries: DeliveryLog | None = None
    # Built, never started, by create_app; serve and socket call `scheduler.start()` once.
    scheduler: JobScheduler | None = None
    # How approvals reach people (approvals.notifier_of falls back to the log without it).
    approvals_notifier: ApprovalNotifier | None = None

    def require_box(self) -> SecretBox:
        if self.box is None:
            raise RuntimeError("ROLEUP_ENCRYPTION_KEYS is required to read or store AWS keys")
        return self.box
