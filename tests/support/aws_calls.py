"""Recording and failing AWS calls through botocore's event hooks (the `aws_calls` and
`aws_faults` fixtures), and what moto's policy-simulator stand-in answers (`moto_gaps`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

READS = ("Get", "List", "Simulate")


@dataclass
class SimulatedPermissions:
    """What our SimulatePrincipalPolicy stand-in answers: every action allowed unless denied."""

    denied: set[str] = field(default_factory=set)
    #: Decide the rest from the principal's own policies, on the resource asked.
    evaluate: bool = False


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
