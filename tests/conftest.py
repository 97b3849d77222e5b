"""Shared fixtures: settings on a temporary data dir, a migrated database, an API client with a key.

Database backends: SQLite always; PostgreSQL when TEST_POSTGRES_URL is set (tests/utils/services.py).
Data builders live in tests/utils/factories.py; import them from there.
"""

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.core.celery import create_celery
from app.core.config import Settings
from app.core.db import make_engine, make_session_factory
from app.core.migrate import upgrade_database
from app.core.queue import CeleryRewardRunner
from app.main import create_app
from app.schemas.reward_check import RewardCheckReply, RewardCheckRequest
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


class RewardWorker:
    """One real reward worker process (workers/reward_app.py) for the whole session, on a broker of its
    own, started on first use: reward tests and dry runs travel API -> broker -> worker as in production,
    and the many tests that never test a reward do not pay for the process."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.process = directory, None
        self._settings = Settings(data_dir=directory, log_format="none")
        self._lock = threading.Lock()

    def runner(self, timeout_s: float = 60.0) -> "LazyRewardRunner":
        return LazyRewardRunner(self, CeleryRewardRunner(create_celery(self._settings), timeout_s))

    def ensure_started(self) -> None:
        from scripts.stack import service_env, start_reward_worker

        with self._lock:
            if self.process is None or self.process.poll() is not None:
                env = service_env(self.directory, {"GRPO_LOG_FORMAT": "text", "GRPO_LOG_LEVEL": "WARNING"})
                self.process = start_reward_worker(env, self.directory)

    def stop(self) -> None:
        from scripts.stack import stop

        if self.process is not None:
            stop(self.process)


class LazyRewardRunner:
    def __init__(self, worker: RewardWorker, runner: CeleryRewardRunner) -> None:
        self.worker, self.runner = worker, runner

    def run(self, request: RewardCheckRequest) -> RewardCheckReply:
        self.worker.ensure_started()
        return self.runner.run(request)


@pytest.fixture(scope="session")
def reward_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RewardWorker]:
    worker = RewardWorker(tmp_path_factory.mktemp("reward-worker"))
    yield worker
    worker.stop()


@pytest.fixture
def client(settings: Settings, queue: RecordingQueue, reward_worker: RewardWorker) -> Iterator[TestClient]:
    app = create_app(settings, queue=queue, reward_runner=reward_worker.runner())
    with TestClient(app) as test_client:
        yield test_client
    app.state.engine.dispose()


@pytest.fixture
def auth(session_factory: sessionmaker[Session], settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(session_factory, settings, 'team-a')}"}


@pytest.fixture
def other_auth(session_factory: sessionmaker[Session], settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(session_factory, settings, 'team-b')}"}
