"""Real processes: the API under uvicorn and a Celery worker, on the embedded default or PostgreSQL + Redis."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.stack import Stack, admin, running_stack
from tests.utils.live import FAST_HEARTBEAT, shared_stack
from tests.utils.services import POSTGRES_URL, REDIS_URL, fresh_postgres_database, skip_or_fail

# Re-exported for branches that still import these from here; new code imports them from tests.utils.live.
__all__ = ["FAST_HEARTBEAT", "shared_stack"]


@pytest.fixture(params=["embedded", "postgres+redis"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    if request.param == "embedded":
        with running_stack(tmp_path / "data", extra_env=FAST_HEARTBEAT) as running:
            yield running
        return
    if not (POSTGRES_URL and REDIS_URL):
        skip_or_fail("TEST_POSTGRES_URL and TEST_REDIS_URL are not set")
    with fresh_postgres_database() as database_url:
        env = FAST_HEARTBEAT | {"DATABASE_URL": database_url, "CELERY_BROKER_URL": _fresh_redis_db()}
        with running_stack(tmp_path / "data", extra_env=env) as running:
            yield running


def _fresh_redis_db() -> str:
    """A flushed Redis database, so no message from an earlier test run is delivered."""
    assert REDIS_URL
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()
    return REDIS_URL


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    key = admin(stack.env, "create-key", "--tenant", "it")
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        yield client
