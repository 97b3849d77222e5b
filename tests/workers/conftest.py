"""Worker-side tests run the real runner (claim -> inputs -> engine -> sink) in-process on SQLite: the
training itself does not depend on the database, and one backend keeps these tests cheap."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.models import Job
from workers.evaluation_runner import run_evaluation
from workers.merge_runner import run_merge
from workers.runner import run_job


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'grpo.db'}"


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Worker:
    """What a Celery worker would do with each message, called directly."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings, self.sessions = settings, sessions

    def train(self, job_id: str) -> Job:
        run_job(job_id=uuid.UUID(job_id), settings=self.settings, session_factory=self.sessions, worker_id="w1")
        with self.sessions() as session:
            job = session.get(Job, uuid.UUID(job_id))
            assert job is not None
            return job

    def evaluate(self, evaluation_id: str) -> None:
        run_evaluation(evaluation_id=uuid.UUID(evaluation_id), settings=self.settings, session_factory=self.sessions)

    def merge(self, job_id: str, step: int) -> None:
        run_merge(job_id=uuid.UUID(job_id), step=step, settings=self.settings, session_factory=self.sessions)


@pytest.fixture
def worker(settings: Settings, session_factory: sessionmaker[Session]) -> Worker:
    return Worker(settings, session_factory)
