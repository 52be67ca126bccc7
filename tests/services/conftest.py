"""Every service test runs with moto's IAM gaps filled (tests/conftest.py's `moto_gaps`), its
botocore sessions share one loader of AWS's service models, and the cores' shared AWS clients
come from one credential-less session for the run; `account` is the IAM account the sync tests
read, `company` the one the access reviews review."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from bot.services.sync import sync_integration
from storage.models import Account
from tests.support.aws_calls import SimulatedPermissions
from tests.support.iam_users import POLICY_DOC
from tests.support.reviews import MANAGER, OTHER
from tests.support.seed import add_integration


@pytest.fixture(autouse=True)
def _moto_gaps_filled(moto_gaps: SimulatedPermissions) -> SimulatedPermissions:
    return moto_gaps


@pytest.fixture(scope="session", autouse=True)
def _one_botocore_loader() -> Iterator[None]:
    """Every botocore session of these tests reads AWS's service models through one loader. The
    bot makes one session per process (bot.services.aws.AwsClients), but a service test builds a
    new core, and so new sessions, each time: without this each test parsed the IAM and STS
    models from disk again, most of its set-up. Kept to this folder: with the app's listener
    threads and the moto server of tests/e2e, one test there (the deny-all fallback of
    test_approval_integrity.py) no longer saw AWSDenyAll attached in time."""
    import botocore.loaders
    import botocore.session

    shared: dict[str | None, botocore.loaders.Loader] = {}
    original = botocore.session.create_loader

    def one_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
        if search_path_string not in shared:
            shared[search_path_string] = original(search_path_string)
        return shared[search_path_string]

    botocore.session.create_loader = one_loader
    yield
    botocore.session.create_loader = original


def _still_there(owner: Any, *names: str) -> bool:
    """Whether a library still has the private parts a speed-up below replaces: the suite
    installs the newest moto and botocore, and a speed-up must never break a test, so when one
    of them has changed the speed-up is left off (with a warning) and the tests run as is."""
    missing = [name for name in names if not hasattr(owner, name)]
    if missing:
        warnings.warn(f"test speed-up off: {owner!r} has no {', '.join(missing)}", stacklevel=2)
    return not missing


@pytest.fixture(scope="session", autouse=True)
def _one_credentialless_session() -> Iterator[None]:
    """The shared clients of every core come from one credential-less session for the run
    (bot.services.aws.credentialless_session): a core per test made two sessions, each
    registering its event handlers and answering its first client slowly. The session holds
    nothing of a test (its clients sign each call with the credentials bound to that call) and
    each core still makes its own clients; they are made one at a time, as a boto3 session is
    not thread-safe."""
    from bot.services import aws

    original = aws.credentialless_session
    made: dict[str, Any] = {}
    lock = threading.Lock()

    def one_per_region(region: str) -> Any:
        with lock:
            if region not in made:
                session = original(region)
                make_client = session.client

                def client(*args: Any, **kwargs: Any) -> Any:
                    with lock:
                        return make_client(*args, **kwargs)

                session.client = client  # type: ignore[method-assign]
                made[region] = session
            return made[region]

    aws.credentialless_session = one_per_region
    yield
    aws.credentialless_session = original


@pytest.fixture(scope="session", autouse=True)
def _one_requests_catch_all_per_mock() -> Iterator[None]:
    """Each start of moto's mock (one a test) registered ~1,300 URL patterns (each AWS service's
    for each HTTP method) with `responses`, the mock of the `requests` library: a sixth of a
    service test's set-up. RoleUp reaches AWS through botocore only, which moto intercepts
    before sending (its stubber, untouched here); a `requests` call to AWS still gets moto's
    answer, through one pattern a method that hands it to the same stubber."""
    import re

    import responses
    from moto.core import models

    if not _still_there(
        models,
        "MockAWS",
        "botocore_stubber",
        "responses_mock",
        "RESPONSES_METHODS",
        "CallbackResponse",
        "not_implemented_callback",
    ) or not _still_there(models.MockAWS, "_enable_patching", "reset"):
        yield
        return
    original = models.MockAWS._enable_patching
    aws_url = re.compile(r"https?://.+\.amazonaws.com/.*")

    def answer(request: Any) -> Any:
        found = models.botocore_stubber.process_prepared_request(request)
        return found if found is not None else models.not_implemented_callback(request)

    def enable_patching(self: Any, reset: bool = True) -> None:
        models.botocore_stubber.enabled = True
        if reset:
            self.reset()
        models.responses_mock.start()
        for method in models.RESPONSES_METHODS:
            models.responses_mock.add(
                models.CallbackResponse(method=method, url=aws_url, callback=answer)
            )

    assert responses.POST in models.RESPONSES_METHODS  # the moto this replaces a part of
    models.MockAWS._enable_patching = enable_patching  # type: ignore[method-assign]
    yield
    models.MockAWS._enable_patching = original  # type: ignore[method-assign]


@pytest.fixture(scope="session", autouse=True)
def _one_client_class_per_service() -> Iterator[None]:
    """botocore builds a new class for each client it makes, with a method for each of the
    service's ~170 operations (about 5 ms of CPU for IAM); these tests make several clients a
    test. The class holds only those methods (each one calls its client's own
    _make_api_call), so the first one made for a service and API version serves the later
    clients; a class given other bases by an event handler (boto3 does so for a few services)
    is never reused. Every client is still new, with its own events, endpoint and credentials."""
    from botocore.client import BaseClient, ClientCreator

    if not _still_there(ClientCreator, "_create_client_class"):
        yield
        return
    original = ClientCreator._create_client_class
    made: dict[tuple[str, str], type] = {}

    def one_class(self: ClientCreator, service_name: str, service_model: Any) -> type:
        key = (service_name, service_model.api_version)
        if key in made:
            return made[key]
        cls = original(self, service_name, service_model)
        if cls.__bases__ == (BaseClient,):
            made[key] = cls
        return cls

    ClientCreator._create_client_class = one_class  # type: ignore[method-assign]
    yield
    ClientCreator._create_client_class = original  # type: ignore[method-assign]


@pytest.fixture(scope="session", autouse=True)
def _builtin_handlers_registered_once() -> Iterator[None]:
    """A botocore session registers its ~130 built-in event handlers one by one (about 9 ms of
    CPU each time); these tests make a session per core and per moto mock, several per test. A
    session here starts from a copy of the first session's handlers instead: botocore copies
    an emitter the same way for each client it makes. The copy is remade if the built-in list
    changes (moto adds its request stubber to it when imported, so it is imported first)."""
    import copy

    import botocore.handlers
    import botocore.hooks
    import botocore.session
    import moto.core.models  # noqa: F401  (registers moto's stubber among the built-ins)

    session_class = botocore.session.Session
    if not _still_there(session_class, "_register_builtin_handlers"):
        yield
        return
    original = session_class._register_builtin_handlers
    made: dict[tuple[int, ...], botocore.hooks.HierarchicalEmitter] = {}

    def from_copy(self: botocore.session.Session, events: botocore.hooks.EventAliaser) -> None:
        key = tuple(map(id, botocore.handlers.BUILTIN_HANDLERS))
        if type(self._original_handler) is not botocore.hooks.HierarchicalEmitter:
            original(self, events)  # a session given its own event hooks: as botocore does
            return
        if key not in made:
            original(self, events)
            made[key] = copy.copy(self._original_handler)
            return
        self._original_handler = copy.copy(made[key])
        self._events = botocore.hooks.EventAliaser(self._original_handler)

    session_class._register_builtin_handlers = from_copy  # type: ignore[method-assign]
    yield
    session_class._register_builtin_handlers = original  # type: ignore[method-assign]


@pytest.fixture
def account(iam):
    """Staff inside /staff/, a contractor outside it, groups with policies, a Slack link tag."""
    arn = iam.create_policy(PolicyName="s3-read", PolicyDocument=POLICY_DOC)["Policy"]["Arn"]
    for group in ("developers", "readers"):
        iam.create_group(GroupName=group)
    iam.attach_group_policy(GroupName="readers", PolicyArn=arn)
    iam.create_user(
        UserName="alice", Path="/staff/", Tags=[{"Key": "roleup:slack-user", "Value": "U0ALICE"}]
    )
    iam.add_user_to_group(UserName="alice", GroupName="developers")
    iam.attach_user_policy(UserName="alice", PolicyArn=arn)
    iam.put_user_policy(UserName="alice", PolicyName="extra", PolicyDocument=POLICY_DOC)
    iam.create_user(UserName="bob", Path="/staff/ops/")
    iam.add_user_to_group(UserName="bob", GroupName="readers")
    iam.create_user(UserName="carol", Path="/contractors/")
    iam.add_user_to_group(UserName="carol", GroupName="readers")
    return {"policy_arn": arn}


@pytest.fixture
def company(core, iam):
    """prod manages /people/: alice (console password, no MFA, a key), bob (linked to the
    manager), carol (in admins, a privileged group); a robot outside the prefix."""
    integration_id = add_integration(
        core, path_prefix="/people/", managers=[MANAGER, OTHER], privileged_groups=["admins"]
    )
    for name in ("alice", "bob", "carol"):
        iam.create_user(UserName=name, Path="/people/")
    iam.create_user(UserName="robot", Path="/robots/")
    iam.create_login_profile(UserName="alice", Password="Xx-123456789-!!")
    iam.create_access_key(UserName="alice")
    iam.create_group(GroupName="admins")
    iam.create_group(GroupName="developers")
    iam.add_user_to_group(GroupName="admins", UserName="carol")
    iam.add_user_to_group(GroupName="developers", UserName="carol")
    iam.add_user_to_group(GroupName="developers", UserName="alice")
    sync_integration(core, integration_id, actor="test")
    with core.sessions.begin() as session:
        session.execute(
            update(Account).where(Account.user_name == "bob").values(slack_user_id=MANAGER)
        )
        session.execute(
            update(Account).where(Account.user_name == "carol").values(slack_user_id="UCAROL")
        )
    return integration_id
