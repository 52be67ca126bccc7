"""Every security test runs with moto's IAM gaps filled (tests/conftest.py's `moto_gaps`); a
module marked `moto_server` runs the app on the moto server (tests/support/moto_server.py)."""

from __future__ import annotations

import pytest

from tests.support.aws_calls import SimulatedPermissions
from tests.support.moto_server import aws, settings  # noqa: F401 (fixtures)
from tests.support.stalled_submissions import prod, sending  # noqa: F401 (fixtures)


@pytest.fixture(autouse=True)
def _moto_gaps_filled(moto_gaps: SimulatedPermissions) -> SimulatedPermissions:
    return moto_gaps
