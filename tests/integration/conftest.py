"""Real processes: the API under uvicorn and a Celery worker, on the embedded default or PostgreSQL + Redis."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.stack import Stack, admin, running_stack
from tests.utils.services import POSTGRES_URL, REDIS_URL, fresh_postgres_database, skip_or_fail

FAST_HEARTBEAT = {"GRPO_HEARTBEAT_INTERVAL_S": "1", "GRPO_HEARTBEAT_TIMEOUT_S": "4"}


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


@contextlib.contextmanager
def shared_stack(
    data_dir: Path, *, worker: bool, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[Stack, str]]:
    """One stack for a whole test module, with an API key of a tenant with generous limits.

    On PostgreSQL when TEST_POSTGRES_URL is set (the stricter backend: NUL bytes, types), else SQLite;
    the broker is the embedded SQLite transport either way.
    """
    with contextlib.ExitStack() as resources:
        env = dict(extra_env or {})
        if POSTGRES_URL:
            env["DATABASE_URL"] = resources.enter_context(fresh_postgres_database())
        stack = resources.enter_context(running_stack(data_dir, extra_env=env, worker=worker))
        key = admin(stack.env, "create-key", "--tenant", "live")
        admin(stack.env, "set-limits", "--tenant", "live", "--max-queued", "10000", "--max-running", "10")
        yield stack, key
