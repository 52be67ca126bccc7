"""Fixtures for the security, fault and load tests: AWS fault injection on any core's clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.services.aws import AwsClients
from tests.services.conftest import AwsCalls
from tests.services.conftest import moto_gaps as moto_gaps  # moto's IAM gaps, filled (autouse)


class AwsFaults(AwsCalls):
    """AwsCalls that can also let the first `skip` calls of an operation through."""

    def __init__(self) -> None:
        super().__init__()
        self.skips: dict[str, int] = {}

    def fail_after(self, operation: str, skip: int, code: str = "ServiceFailure") -> None:
        self.skips[operation] = skip
        self.fail(operation, code)

    def _before_call(self, model: Any, **kwargs: Any) -> Any:
        if self.skips.get(model.name, 0) > 0 and self.faults.get(model.name):
            self.skips[model.name] -= 1
            return None
        return super()._before_call(model, **kwargs)


@pytest.fixture
def aws_faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsFaults]:
    """Records and can fail every AWS call of every client any AwsClients builds (the app's,
    in its listener threads, included)."""
    calls = AwsFaults()
    original = AwsClients._client

    def recording(self: AwsClients, *args: Any, **kwargs: Any) -> Any:
        return calls.attach(original(self, *args, **kwargs))

    monkeypatch.setattr(AwsClients, "_client", recording)
    monkeypatch.setattr("bot.services.aws.CONCURRENT_BACKOFF_SECONDS", 0.0)
    yield calls
