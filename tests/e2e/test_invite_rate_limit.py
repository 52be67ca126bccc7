"""The invite page's per-address rate limit holds across two real `roleup serve` processes over
one PostgreSQL: the hits are counted in the store, not in each process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine, func, select

from bot.services import invites
from storage.db import make_engine
from storage.models import RateLimitHit
from tests.e2e.instances import Instance, common_env, dedicated_postgres
from tests.support.postgres import TempPostgres
from tests.support.slack_api import FakeSlackApi

pytestmark = pytest.mark.slow

LIMIT = 5


@pytest.fixture
def shared_db(postgres_base: TempPostgres | None) -> Iterator[Engine]:
    engine = make_engine(dedicated_postgres(postgres_base))
    yield engine
    engine.dispose()


@pytest.fixture
def two_instances(
    shared_db: Engine, moto_url: str, slack_api: FakeSlackApi, tmp_path: Path
) -> Iterator[tuple[Instance, Instance]]:
    env = {
        **common_env(moto_url, slack_api),
        "DATABASE_URL": shared_db.url.render_as_string(hide_password=False),
        "ROLEUP_SCHEDULER": "off",
        "ROLEUP_INVITE_RATE_LIMIT": str(LIMIT),
        "ROLEUP_INVITE_RATE_WINDOW_SECONDS": "3600",
    }
    first = Instance("first", env, tmp_path)
    second = Instance("second", env, tmp_path)
    try:
        first.start()
        second.start()
        yield first, second
    finally:
        first.stop()
        second.stop()


def test_the_rate_limit_is_shared_by_two_serve_processes_and_answers_429(two_instances, shared_db):
    first, second = two_instances
    token = invites.new_token()
    statuses = []
    for i in range(LIMIT):  # alternating: neither process alone sees the limit reached
        target = (first, second)[i % 2]
        statuses.append(requests.get(f"{target.url}/invite/{token}", timeout=10).status_code)
    assert statuses == [404] * LIMIT
    for target in (first, second):
        refused = requests.get(f"{target.url}/invite/{token}", timeout=10)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 3600
        assert "Too many requests" in refused.text
        posted = requests.post(f"{target.url}/invite/{token}", data={"x": "y"}, timeout=10)
        assert posted.status_code == 429
    # The health check is not the page's: it still answers.
    assert requests.get(f"{first.url}/healthz", timeout=10).status_code == 200
    with shared_db.connect() as conn:
        hits = conn.execute(select(func.sum(RateLimitHit.hits))).scalar_one()
    assert hits == LIMIT + 4  # every request counted once, whichever process took it
    for instance in (first, second):
        assert token not in instance.log.read_text()
