"""Test data builders shared across test packages (import them from here, not from conftest or from
another test module)."""

import subprocess
import uuid

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.models import Job, Tenant
from app.schemas.job import JobStatus
from app.services.tenants import create_api_key, get_or_create_tenant
from workers import liveness


class RecordingQueue:
    """Stands in for Celery in API tests: records what would have been enqueued."""

    def __init__(self) -> None:
        self.enqueued: list[uuid.UUID] = []
        self.evaluations: list[uuid.UUID] = []
        self.merges: list[tuple[uuid.UUID, int]] = []

    def enqueue_training(self, job_id: uuid.UUID) -> None:
        self.enqueued.append(job_id)

    def enqueue_evaluation(self, evaluation_id: uuid.UUID) -> None:
        self.evaluations.append(evaluation_id)

    def enqueue_merge(self, job_id: uuid.UUID, step: int) -> None:
        self.merges.append((job_id, step))


def make_key(session_factory: sessionmaker[Session], settings: Settings, tenant_name: str) -> str:
    with session_factory() as session:
        tenant = get_or_create_tenant(session=session, name=tenant_name)
        _, key = create_api_key(
            session=session, tenant=tenant, name="test", secret=settings.secret_key.get_secret_value()
        )
    return key


def tiny_spec(**grpo: object) -> dict[str, object]:
    """A small valid job spec."""
    return {
        "name": "test-job",
        "model": {"source": "tiny-demo"},
        "dataset": {"rows": [{"prompt": f"{d}:", "answer": str(d)} for d in range(10)]},
        "rewards": [{"type": "exact_match", "field": "answer"}],
        "grpo": {"group_size": 4, "prompts_per_step": 2, "max_steps": 3, "max_new_tokens": 4, **grpo},
    }


def make_job(session: Session, status: JobStatus = JobStatus.queued, **values: object) -> uuid.UUID:
    """A job row of a new tenant, straight into the database (no spec checks)."""
    tenant = Tenant(name=f"t-{uuid.uuid4().hex[:6]}")
    session.add(tenant)
    session.flush()
    job = Job(tenant_id=tenant.id, name="j", spec={}, status=status, total_steps=10, **values)
    session.add(job)
    session.commit()
    return job.id


def dead_worker_id() -> str:
    """The worker id a process had, after that process was killed and reaped."""
    process = subprocess.Popen(["sleep", "30"])
    worker_id = liveness.worker_id_of(process.pid)
    process.kill()
    process.wait()
    return worker_id
