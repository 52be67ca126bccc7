"""Every security test runs with moto's IAM gaps filled (tests/conftest.py's `moto_gaps`)."""

from __future__ import annotations

import pytest

from tests.support.aws_calls import SimulatedPermissions


@pytest.fixture(autouse=True)
def _moto_gaps_filled(moto_gaps: SimulatedPermissions) -> SimulatedPermissions:
    return moto_gaps
