"""Shared fixtures: settings on a temporary data dir, a migrated database, an API client with a key.

Database backends: SQLite always; PostgreSQL when TEST_POSTGRES_URL is set (tests/utils/services.py).
Data builders live in tests/utils/factories.py; import them from there.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.db import make_engine, make_session_factory
from app.core.migrate import upgrade_database
from app.main import create_app
from tests.utils.factories import RecordingQueue, make_key, tiny_spec
from tests.utils.services import POSTGRES_URL, REDIS_URL, fresh_postgres_database, skip_or_fail

# Kept importable from here for tests written before tests/utils (new tests import from tests/utils).
_skip_or_fail = skip_or_fail
__all__ = ["POSTGRES_URL", "REDIS_URL", "RecordingQueue", "fresh_postgres_database", "make_key", "tiny_spec"]

# No hub access here: fail fast on hub ids instead of retrying the network for half a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'grpo.db'}"
        return
    if not POSTGRES_URL:
        skip_or_fail("TEST_POSTGRES_URL is not set")
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    upgrade_database(database_url)
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        broker_url=f"sqla+sqlite:///{data_dir / 'broker.db'}",
        secret_key="test-secret",
        model_roots=[tmp_path / "models"],
        log_format="none",  # pytest captures logs; the JSON handler is tested on its own
    )


@pytest.fixture
def session_factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def client(settings: Settings, queue: RecordingQueue) -> Iterator[TestClient]:
    app = create_app(settings, queue=queue)
    with TestClient(app) as test_client:
        yield test_client
    app.state.engine.dispose()


@pytest.fixture
def auth(session_factory: sessionmaker[Session], settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(session_factory, settings, 'team-a')}"}


@pytest.fixture
def other_auth(session_factory: sessionmaker[Session], settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(session_factory, settings, 'team-b')}"}
