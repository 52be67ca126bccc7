"""What every service and handler is handed: built once by bot.app, never at import."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.metrics import Metrics
from bot.services.aws import AwsClients
from bot.services.people import NoDirectory, People
from bot.settings import Settings
from storage.crypto import SecretBox


@dataclass
class Core:
    """The store, the key box and the AWS client factory: enough for the CLI and the jobs."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    box: SecretBox | None
    aws: AwsClients
    # What /metrics reports; create_core hands the same one to the AWS clients and the store.
    metrics: Metrics = field(default_factory=Metrics)
    # Who people are (Slack standing, user groups); the Slack app installs its directory.
    people: People = field(default_factory=NoDirectory)
    # Extra collaborators (the Slack client, the scheduler, ...) set by create_app.
    extras: dict[str, Any] = field(default_factory=dict)

    def require_box(self) -> SecretBox:
        if self.box is None:
            raise RuntimeError("ROLEUP_ENCRYPTION_KEYS is required to read or store AWS keys")
        return self.box
