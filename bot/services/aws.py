"""boto3 clients per integration: from its decrypted key pair, or by assuming its role."""

from __future__ import annotations

import contextvars
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, Credentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError
from botocore.utils import parse_timestamp as botocore_timestamp

from bot.services.acting import CHECK_ACTOR, Actor, Assumed, SessionCache, aware, utcnow
from bot.services.errors import (
    AwsAccessDenied,
    AwsConflict,
    AwsError,
    AwsUnavailable,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    PasswordPolicyViolation,
    RoleUpError,
    Throttled,
)
from storage.crypto import SecretBox
from storage.models import Integration

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sts import STSClient

    from bot.metrics import Metrics

# Throttling and 5xx are retried by botocore's standard mode; everything else surfaces.
MAX_ATTEMPTS = 5
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30
# The longest one AWS call can take: every attempt timing out, with standard mode's backoff
# (at most 20 s) between them. A request's lease outlives it.
WORST_CALL_SECONDS = MAX_ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT + 20)


def retry_config(attempts: int = MAX_ATTEMPTS) -> Config:
    """A fresh Config per client: botocore rewrites the retries dict of the one it is given."""
    return Config(
        retries={"mode": "standard", "max_attempts": attempts},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        user_agent_extra="roleup-aws",
    )


logger = logging.getLogger(__name__)
T = TypeVar("T")

# botocore does not retry ConcurrentModification (IAM's "someone else is changing this entity");
# it clears within a second or two, so a few short waits are enough.
CONCURRENT_ATTEMPTS = 4
CONCURRENT_BACKOFF_SECONDS = 0.25

CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "AuthFailure",
    }
)
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
THROTTLE_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)
UNAVAILABLE_CODES = frozenset(
    {"ServiceFailure", "ServiceUnavailable", "InternalFailure", "InternalError"}
)
INPUT_CODES = frozenset({"InvalidInput", "ValidationError", "MalformedPolicyDocument"})

ErrorFactory = Callable[[], RoleUpError]


def parse_timestamp(value: str) -> datetime:
    """A timestamp of an AWS answer, as botocore's own parser reads it, only faster.

    AWS writes ISO 8601 with a zone ("2026-05-01T12:00:00Z"), which `datetime.fromisoformat`
    reads in C. botocore hands every timestamp to dateutil instead, at about 80 µs each: for a
    sync, two per user, that was most of the time spent reading GetAccountAuthorizationDetails
    and ListUsers. Anything else (epoch seconds, HTTP dates, no zone) goes to botocore's parser.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return botocore_timestamp(value)
    return parsed if parsed.tzinfo is not None else botocore_timestamp(value)


def new_session(region: str, core: botocore.session.Session | None = None) -> boto3.session.Session:
    """A boto3 session whose clients read timestamps with `parse_timestamp`."""
    core = core or botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )
    return boto3.session.Session(botocore_session=core, region_name=region)


def credentialless_session(region: str) -> boto3.session.Session:
    """A session for the shared clients: its only credentials are the ones bound to the call
    being signed (none: refused). Nothing else of a caller's goes in it, so the tests share
    one for the run (tests/conftest.py)."""
    core = botocore.session.Session()
    core.register_component("credential_provider", CredentialResolver([_BoundProvider()]))
    return new_session(region, core)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(
    exc: Exception, what: str, overrides: Mapping[str, ErrorFactory] | None = None
) -> RoleUpError:
    """The domain error for a botocore failure while trying to `what` (e.g. "create user bob").

    Messages are built from the error code and the operation only: AWS's own text is left to
    the log, so nothing the request carried (a password, a key) can ride along into a message.
    """
    if isinstance(exc, RoleUpError):
        return exc
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return InvalidCredentials(f"Could not {what}: no AWS credentials are configured.")
    if isinstance(exc, ConnectionError):
        return AwsUnavailable(f"Could not {what}: AWS could not be reached. Try again shortly.")
    if isinstance(exc, ClientError):
        return _translate_client_error(exc, what, overrides or {})
    if isinstance(exc, BotoCoreError | ResponseParserError):
        return AwsUnavailable(f"Could not {what}: the call to AWS failed ({type(exc).__name__}).")
    return AwsError(f"Could not {what}: unexpected failure ({type(exc).__name__}).")


def _translate_client_error(
    exc: ClientError, what: str, overrides: Mapping[str, ErrorFactory]
) -> RoleUpError:
    code = error_code(exc)
    if code in overrides:
        return overrides[code]()
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    action = f"{_service_of(exc.operation_name)}:{exc.operation_name}"
    if code in CREDENTIAL_CODES:
        return InvalidCredentials(
            f"Could not {what}: AWS rejected the integration's credentials ({code}). "
            "Check the access key or role and update the integration."
        )
    if code in DENIED_CODES:
        return AwsAccessDenied(
            f"Could not {what}: AWS denied {action} to the integration's credentials. "
            "Grant that permission to its key or role."
        )
    if code in THROTTLE_CODES:
        return Throttled(f"Could not {what}: AWS is throttling requests. Try again in a minute.")
    if code in UNAVAILABLE_CODES or status >= 500:
        return AwsUnavailable(f"Could not {what}: AWS is unavailable right now. Try again later.")
    if code == "NoSuchEntity":
        return NotFound(f"Could not {what}: it does not exist in AWS.")
    if code == "PasswordPolicyViolation":
        return PasswordPolicyViolation(
            f"Could not {what}: the password does not meet the account's password policy."
        )
    if code in INPUT_CODES:
        return InvalidInput(f"Could not {what}: AWS refused the input as invalid.")
    if code in ("DeleteConflict", "EntityAlreadyExists", "LimitExceeded", "ConcurrentModification"):
        return AwsConflict(f"Could not {what}: AWS refused it ({code}).")
    return AwsError(f"Could not {what}: AWS answered {code or 'an error'}.")


STS_OPERATIONS = frozenset({"AssumeRole", "GetCallerIdentity", "GetSessionToken"})


def _service_of(operation: str | None) -> str:
    return "sts" if operation in STS_OPERATIONS else "iam"


def call(
    operation: Callable[..., T],
    what: str,
    /,
    overrides: Mapping[str, ErrorFactory] | None = None,
    **kwargs: Any,
) -> T:
    """Call one AWS operation, retrying ConcurrentModification, raising domain errors."""
    for attempt in range(1, CONCURRENT_ATTEMPTS + 1):
        try:
            return operation(**kwargs)
        except ClientError as exc:
            if error_code(exc) == "ConcurrentModification" and attempt < CONCURRENT_ATTEMPTS:
                delay = CONCURRENT_BACKOFF_SECONDS * 2 ** (attempt - 1)
                time.sleep(delay * (0.5 + random.random()))
                continue
            logger.info("AWS refused to %s: %s", what, error_code(exc) or type(exc).__name__)
            raise translate(exc, what, overrides) from exc
        except (BotoCoreError, ResponseParserError) as exc:
            logger.info("AWS call failed while trying to %s: %s", what, type(exc).__name__)
            raise translate(exc, what, overrides) from exc
    raise AssertionError("unreachable")  # the loop returns or raises


class CallPools:
    """Threads kept for the concurrent AWS calls of a use case (an offboarding's cuts and
    cleanup), so a run starts none of its own: starting a thread waits until it first holds
    the GIL, milliseconds on a busy machine, paid right before the calls that cut access.

    Two pools, so a wait never needs a thread of its own pool: `tasks` run units of work that
    may wait on `calls`; `calls` run single AWS calls, which wait on nothing. Threads are made
    on demand up to `size` each and then kept; callers bound their own concurrency. A third,
    `beside`, runs what lasts as long as a use case (its lease, its report writers): it is never
    short of a thread (BESIDE_THREADS is far more than a process runs at once), so none of
    them waits for another to end."""

    BESIDE_THREADS = 1024

    def __init__(self, size: int = 32) -> None:
        self.tasks = ThreadPoolExecutor(max_workers=size, thread_name_prefix="roleup-aws-task")
        self.calls = ThreadPoolExecutor(max_workers=size, thread_name_prefix="roleup-aws-call")
        self.beside = ThreadPoolExecutor(
            max_workers=self.BESIDE_THREADS, thread_name_prefix="roleup-beside"
        )

    def shutdown(self, wait: bool = True) -> None:
        for pool in (self.tasks, self.calls, self.beside):
            pool.shutdown(wait=wait, cancel_futures=not wait)


def run_each(
    pool: Executor, items: Sequence[T], work: Callable[[T], None], *, bound: int
) -> list[BaseException | None]:
    """Run `work` on every item, at most `bound` at once, on `pool`'s threads, each in a copy
    of the caller's context (its log context); items start in order. Waits for all; returns
    what each raised (None for those that returned), in the items' order."""
    errors: list[BaseException | None] = [None] * len(items)
    lock = threading.Lock()
    pending = iter(range(len(items)))

    def runner() -> None:
        while True:
            with lock:
                index = next(pending, None)
            if index is None:
                return
            try:
                work(items[index])
            except BaseException as exc:  # kept for the caller, in the items' order
                errors[index] = exc

    runners = [
        pool.submit(contextvars.copy_context().run, runner)
        for _ in range(max(1, min(bound, len(items))))
    ]
    wait(runners)
    for runner_done in runners:
        runner_done.result()  # a runner itself never raises; a pool shut down does
    return errors


class AwsClients:
    """Builds IAM and STS clients; honours AWS_ENDPOINT_URL (boto3 reads it itself too)."""

    def __init__(
        self,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        *,
        clock: Callable[[], datetime] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.metrics = metrics
        self.region = region
        self.sessions = SessionCache(clock or utcnow)
        # One boto3 session, made on first use: a new session per client reloads the service
        # models from disk (about half a second each time). Credentials go to each client.
        self._session: boto3.session.Session | None = None
        self._lock = threading.Lock()  # boto3 sessions are not thread-safe; clients are
        # Building a botocore client costs tens of milliseconds (copying the session's event
        # handlers, making the client class, its endpoint and TLS context): one shared client
        # per service and retry count signs every call with the credentials bound to that call.
        self._shared: dict[tuple[str, int], Any] = {}
        # Held while a shared client is made: the first commands after a start, arriving
        # together, wait for the one being made instead of each making its own (a new
        # credential-less session loads the service's model, ~0.5 s of CPU each time).
        self._making = threading.Lock()
        self.pools = CallPools()

    def _client(
        self,
        service: str,
        credentials: Mapping[str, str] | None = None,
        *,
        retries: int = MAX_ATTEMPTS,
    ) -> Any:
        if credentials:
            return CredentialBoundClient(self._shared_client(service, retries), credentials)
        return self._new_client(service, self._boto_session(), retries)

    def _boto_session(self) -> boto3.session.Session:
        with self._lock:
            if self._session is None:
                self._session = new_session(self.region)
            return self._session

    def _new_client(self, service: str, session: boto3.session.Session, retries: int) -> Any:
        kwargs: dict[str, Any] = {"region_name": self.region, "config": retry_config(retries)}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        with self._lock:
            client = session.client(service, **kwargs)  # type: ignore[call-overload]
        if self.metrics is not None:
            self.metrics.watch_boto(client)
        return client

    def _shared_client(self, service: str, retries: int) -> Any:
        with self._lock:
            found = self._shared.get((service, retries))
        if found is not None:
            return found
        with self._making:
            with self._lock:
                found = self._shared.get((service, retries))
            if found is None:
                found = self._new_client(service, credentialless_session(self.region), retries)
                with self._lock:
                    self._shared[(service, retries)] = found
            return found

    def iam_with_key(self, access_key_id: str, secret_access_key: str) -> IAMClient:
        return self._client("iam", _key_pair(access_key_id, secret_access_key))

    def sts_with_key(self, access_key_id: str, secret_access_key: str) -> STSClient:
        return self._client("sts", _key_pair(access_key_id, secret_access_key))

    def assume_role(
        self, role_arn: str, external_id: str | None, actor: Actor | None = None
    ) -> dict[str, str]:
        """Temporary credentials for the role, from the server's own credentials, in a session
        named after `actor` (no cache: the integration credential check wants a fresh answer)."""
        return self._assume(role_arn, external_id, actor or CHECK_ACTOR).credentials

    def _assume(self, role_arn: str, external_id: str | None, actor: Actor) -> Assumed:
        sts = self._client("sts")
        kwargs: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": actor.session_name}
        if external_id:
            kwargs["ExternalId"] = external_id
        attribution: dict[str, Any] = {}
        if actor.source_identity:
            attribution["SourceIdentity"] = actor.source_identity
        if actor.tags:
            attribution["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(actor.tags.items())]
        try:
            answer = sts.assume_role(**kwargs, **attribution)
        except ClientError as exc:
            if not attribution or error_code(exc) not in DENIED_CODES:
                raise
            # A trust policy written before RoleUp named its sessions lacks sts:SetSourceIdentity
            # or sts:TagSession; the session name still says who acted (README, "Attribution").
            logger.warning(
                "the trust policy of %s refuses a source identity or session tags; assuming it "
                "without them",
                role_arn,
            )
            answer = sts.assume_role(**kwargs)
        creds = answer["Credentials"]
        return Assumed(
            credentials={
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            },
            expires_at=aware(creds["Expiration"]),
        )

    def iam_with_credentials(self, credentials: Mapping[str, str], *, retries: int) -> IAMClient:
        return self._client("iam", credentials, retries=retries)

    def sts_with_credentials(self, credentials: Mapping[str, str], *, retries: int) -> STSClient:
        return self._client("sts", credentials, retries=retries)

    def credentials_for(
        self, integration: Integration, box: SecretBox, actor: Actor | None = None
    ) -> dict[str, str]:
        """The integration's key pair, or credentials of its role assumed for `actor` (reused,
        for that integration, credentials and actor only, until five minutes before expiry).

        A key needs no actor: CloudTrail names the key's IAM user whoever asked."""
        if integration.credentials_ciphertext:
            pair = json.loads(
                box.decrypt(
                    integration.credentials_ciphertext,
                    what=f"the key of integration {integration.name}",
                )
            )
            return {
                "aws_access_key_id": pair["access_key_id"],
                "aws_secret_access_key": pair["secret_access_key"],
            }
        if integration.role_arn:
            if actor is None:
                raise ValueError(f"say who acts to assume the role of {integration.name}")
            role_arn = integration.role_arn
            acting = actor.for_integration(integration.name)

            def assume() -> Assumed:
                external_id = None
                if integration.external_id_ciphertext:
                    external_id = box.decrypt(
                        integration.external_id_ciphertext,
                        what=f"the external id of integration {integration.name}",
                    )
                return self._assume(role_arn, external_id, acting)

            return self.sessions.get(integration, acting, assume).credentials
        raise ValueError(f"integration {integration.name} has neither a key nor a role")

    def forget(self, integration_id: int) -> None:
        """Drop every cached session of the integration (its credentials changed or it is gone)."""
        self.sessions.forget(integration_id)

    def iam_for(
        self, integration: Integration, box: SecretBox, actor: Actor | None = None
    ) -> IAMClient:
        return self._client("iam", self.credentials_for(integration, box, actor))

    def sts_for(
        self, integration: Integration, box: SecretBox, actor: Actor | None = None
    ) -> STSClient:
        return self._client("sts", self.credentials_for(integration, box, actor))


# --- one shared client per service, each call signed with its own credentials ----------------
_BOUND: contextvars.ContextVar[Credentials | None] = contextvars.ContextVar(
    "roleup_bound_credentials", default=None
)


class NoBoundCredentials(RuntimeError):
    """A shared client was called outside a CredentialBoundClient: nobody's credentials."""


class _BoundCredentials(Credentials):
    """What the shared client's signer holds: the credentials bound to the call being signed on
    this thread, never a default (a call with none bound is refused, not signed)."""

    def __init__(self) -> None:  # no credentials of its own
        self.method = "roleup-bound"

    def _current(self) -> Credentials:
        bound = _BOUND.get()
        if bound is None:
            raise NoBoundCredentials("an AWS call on a shared client has no credentials bound")
        return bound

    def get_frozen_credentials(self) -> Any:
        return self._current().get_frozen_credentials()

    @property
    def access_key(self) -> str:  # type: ignore[override]
        return str(self._current().access_key)

    @property
    def secret_key(self) -> str:  # type: ignore[override]
        return str(self._current().secret_key)

    @property
    def token(self) -> str | None:  # type: ignore[override]
        return self._current().token


class _BoundProvider(CredentialProvider):
    METHOD = "roleup-bound"

    def load(self) -> Credentials:
        return _BoundCredentials()


@contextmanager
def _bound(credentials: Credentials) -> Iterator[None]:
    token = _BOUND.set(credentials)
    try:
        yield
    finally:
        _BOUND.reset(token)


class CredentialBoundClient:
    """A boto3 client for one set of credentials, made in microseconds: every call goes through
    the shared client with these credentials bound for that call only, on the calling thread
    (botocore signs, and re-signs each retry, on the thread that makes the call), so two
    requests' clients never sign with each other's session, even when called concurrently."""

    def __init__(self, shared: Any, credentials: Mapping[str, str]) -> None:
        self._shared = shared
        self._credentials = Credentials(
            credentials["aws_access_key_id"],
            credentials["aws_secret_access_key"],
            credentials.get("aws_session_token"),
        )
        self._methods: dict[str, Callable[..., Any]] = {}

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._shared, name)
        if not callable(found) or name not in self._shared.meta.method_to_api_mapping:
            return found  # meta, exceptions...
        method = self._methods.get(name)
        if method is None:

            def method(*args: Any, **kwargs: Any) -> Any:
                with _bound(self._credentials):
                    return found(*args, **kwargs)

            method.__name__ = name
            self._methods[name] = method
        return method

    def __repr__(self) -> str:
        return f"<CredentialBoundClient {self._shared.meta.service_model.service_name}>"


def _key_pair(access_key_id: str, secret_access_key: str) -> dict[str, str]:
    return {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}


def seal_key_pair(box: SecretBox, access_key_id: str, secret_access_key: str) -> str:
    return box.encrypt(
        json.dumps({"access_key_id": access_key_id, "secret_access_key": secret_access_key})
    )


def key_hint(access_key_id: str) -> str:
    """What may be shown of an access key id: its first four and last four characters."""
    return f"{access_key_id[:4]}…{access_key_id[-4:]}" if len(access_key_id) > 8 else "…"
