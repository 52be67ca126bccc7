"""Fixtures for the IAM services: a Core over the test store, integrations, moto's gaps filled,
AWS call recording and fault injection through botocore's event hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.services.aws import AwsClients, seal_key_pair
from bot.services.container import Core
from bot.settings import Settings
from storage.crypto import SecretBox
from storage.models import Integration
from tests.conftest import TEST_KEY

ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
READS = ("Get", "List", "Simulate")


# --- moto's gaps, filled the way AWS answers -------------------------------------------------
@dataclass
class SimulatedPermissions:
    """What our SimulatePrincipalPolicy stand-in answers: every action allowed unless denied."""

    denied: set[str] = field(default_factory=set)
    #: Decide the rest from the principal's own policies, on the resource asked.
    evaluate: bool = False


@pytest.fixture(autouse=True)
def moto_gaps() -> Iterator[SimulatedPermissions]:
    """moto 5 lacks service-specific credentials and the policy simulator: the demo's fillers
    answer as AWS does for a user with none, and as the simulator does for a principal allowed
    everything but `denied` (both in-process and in the moto server thread)."""
    from bot.demo.moto_gaps import fill_moto_gaps

    permissions = SimulatedPermissions()
    restore = fill_moto_gaps(
        lambda: permissions.denied,
        keep_password_reset=False,
        evaluate_policies=lambda: permissions.evaluate,
    )
    yield permissions
    restore()


# --- the core and its integrations -----------------------------------------------------------
@pytest.fixture
def core(
    engine: Engine, sessions: sessionmaker[Session], box: SecretBox, database_url: str
) -> Core:
    settings = Settings(database_url=database_url, encryption_keys=(TEST_KEY,))
    return Core(
        settings=settings,
        engine=engine,
        sessions=sessions,
        box=box,
        aws=AwsClients(),
    )


@pytest.fixture
def server_core(core: Core, moto_url: str) -> Core:
    """The same core, talking to the moto server over HTTP."""
    core.aws = AwsClients(endpoint_url=moto_url)
    return core


MakeIntegration = Callable[..., Integration]


@pytest.fixture
def make_integration(core: Core) -> MakeIntegration:
    def make(name: str = "prod", *, read_only: bool = False, path_prefix: str = "/") -> Integration:
        with core.sessions.begin() as session:
            integration = Integration(
                name=name,
                read_only=read_only,
                path_prefix=path_prefix,
                access_key_hint="AKIA…MPLE",
                credentials_ciphertext=seal_key_pair(
                    core.require_box(), ACCESS_KEY_ID, SECRET_ACCESS_KEY
                ),
                created_by="UADMIN",
            )
            session.add(integration)
        return integration

    return make


# --- recording and failing AWS calls ---------------------------------------------------------
@dataclass
class AwsCalls:
    """Every AWS operation the clients built by `core.aws` made, with its parameters."""

    made: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    faults: dict[str, list[str]] = field(default_factory=dict)
    #: Callbacks run just before an operation is sent (to look at AWS at that moment).
    on_call: dict[str, Callable[..., None]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.made]

    @property
    def writes(self) -> list[str]:
        return [name for name in self.names if not name.startswith(READS)]

    def params(self, name: str) -> list[dict[str, Any]]:
        return [params for made, params in self.made if made == name]

    def fail(
        self, operation: str, code: str = "ServiceFailure", times: int = 1, after: int = 0
    ) -> None:
        """Let `after` calls of `operation` through, then fail the next `times` with `code`."""
        self.faults.setdefault(operation, []).extend([""] * after + [code] * times)

    def attach(self, client: Any) -> Any:
        # Once per client: the clients core.aws makes may share one botocore client.
        events, tag = client.meta.events, f"aws-calls-{id(self)}"
        events.register("before-parameter-build.*.*", self._record, unique_id=f"{tag}-record")
        events.register("before-call.*.*", self._before_call, unique_id=f"{tag}-call")
        return client

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.made.append((model.name, dict(params)))

    def _before_call(self, model: Any, **_: Any) -> Any:
        if model.name in self.on_call:
            self.on_call[model.name]()
        pending = self.faults.get(model.name)
        if not pending:
            return None
        code = pending.pop(0)
        if not code:
            return None
        status = 500 if code in ("ServiceFailure", "ServiceUnavailable") else 400
        return FakeHttp(status), {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }


@dataclass
class FakeHttp:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""


@pytest.fixture
def aws_calls(core: Core, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsCalls]:
    """Records (and can fail) every call of every client `core.aws` builds."""
    calls = AwsCalls()
    original = AwsClients._client

    def recording(self: AwsClients, *args: Any, **kwargs: Any) -> Any:
        return calls.attach(original(self, *args, **kwargs))

    monkeypatch.setattr(AwsClients, "_client", recording)
    # ServiceFailure would otherwise be retried by botocore's standard mode with backoff.
    monkeypatch.setattr("bot.services.aws.CONCURRENT_BACKOFF_SECONDS", 0.0)
    yield calls
