"""Every service test runs with moto's IAM gaps filled (tests/conftest.py's `moto_gaps`), and
its botocore sessions share one loader of AWS's service models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.aws_calls import SimulatedPermissions


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
