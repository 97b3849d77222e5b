"""Per-tenant maximum of concurrently running jobs: claims beyond it wait (deferred), freed slots release them.

Runs on SQLite and PostgreSQL; the race test checks the limit holds when workers claim at the same moment.
"""

import threading
import uuid

from sqlalchemy import select

from app.models import Job, JobEvent, Tenant
from app.schemas.job import JobStatus
from app.services import runs
from tests.utils.factories import RecordingQueue
from workers.watchdog import release_waiting_jobs, sweep_once


def tenant_with_jobs(session_factory, count: int, max_running: int) -> list[uuid.UUID]:
    with session_factory() as session:
        tenant = Tenant(name=f"t-{uuid.uuid4().hex[:6]}", max_running_jobs=max_running)
        session.add(tenant)
        session.flush()
        jobs = [
            Job(tenant_id=tenant.id, name=f"j{i}", spec={}, status=JobStatus.queued, total_steps=5)
            for i in range(count)
        ]
        session.add_all(jobs)
        session.commit()
        return [job.id for job in jobs]


def claim(session_factory, job_id: uuid.UUID, worker: str = "w") -> bool:
    with session_factory() as session:
        return runs.claim_job(session=session, job_id=job_id, worker_id=worker, max_attempts=3) is not None


def job_row(session_factory, job_id: uuid.UUID) -> Job:
    with session_factory() as session:
        return session.get(Job, job_id)


def test_claims_beyond_the_limit_wait_and_are_released_in_order(session_factory):
    first, second, third = tenant_with_jobs(session_factory, 3, max_running=1)
    other_tenant_job = tenant_with_jobs(session_factory, 1, max_running=1)[0]
    assert claim(session_factory, first)
    assert not claim(session_factory, third) and not claim(session_factory, second)
    assert not claim(session_factory, second)  # a second refusal is not announced again
    assert claim(session_factory, other_tenant_job)  # limits are per tenant
    waiting = job_row(session_factory, second)
    assert waiting.status == JobStatus.queued and waiting.deferred_at is not None
    with session_factory() as session:
        events = session.scalars(select(JobEvent.type).where(JobEvent.job_id == second)).all()
    assert events.count("waiting") == 1

    queue = RecordingQueue()
    assert release_waiting_jobs(session_factory=session_factory, queue=queue) == []  # no free slot yet
    with session_factory() as session:
        runs.finish_job(session=session, job_id=first, worker_id="w", to=JobStatus.succeeded)
    # Oldest submission first, whatever order the refused claims came in.
    assert release_waiting_jobs(session_factory=session_factory, queue=queue) == [second]
    assert queue.enqueued == [second] and job_row(session_factory, second).deferred_at is None
    assert job_row(session_factory, third).deferred_at is not None  # still waiting: one slot, one release
    assert claim(session_factory, second)


def test_a_failed_enqueue_keeps_the_job_waiting(session_factory):
    first, second = tenant_with_jobs(session_factory, 2, max_running=1)
    assert claim(session_factory, first) and not claim(session_factory, second)
    with session_factory() as session:
        runs.finish_job(session=session, job_id=first, worker_id="w", to=JobStatus.failed)

    class DownQueue(RecordingQueue):
        def enqueue_training(self, job_id: uuid.UUID) -> None:
            raise ConnectionError("broker down")

    release_waiting_jobs(session_factory=session_factory, queue=DownQueue())
    assert job_row(session_factory, second).deferred_at is not None  # the next sweep tries again


def test_the_watchdog_sweep_releases_waiting_jobs(session_factory, settings):
    first, second = tenant_with_jobs(session_factory, 2, max_running=1)
    assert claim(session_factory, first) and not claim(session_factory, second)
    with session_factory() as session:
        runs.finish_job(session=session, job_id=first, worker_id="w", to=JobStatus.cancelled)
    queue = RecordingQueue()
    sweep_once(session_factory=session_factory, queue=queue, settings=settings)
    assert queue.enqueued == [second]


def test_simultaneous_claims_respect_the_limit(session_factory):
    jobs = tenant_with_jobs(session_factory, 4, max_running=2)
    start = threading.Barrier(len(jobs))
    results: dict[uuid.UUID, bool] = {}

    def worker(job_id: uuid.UUID) -> None:
        start.wait()
        results[job_id] = claim(session_factory, job_id, worker=str(job_id))

    threads = [threading.Thread(target=worker, args=(job_id,)) for job_id in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(results.values()) == 2
    with session_factory() as session:
        running = session.scalars(select(Job.id).where(Job.id.in_(jobs), Job.status == JobStatus.running)).all()
        deferred = session.scalars(select(Job.id).where(Job.id.in_(jobs), Job.deferred_at.is_not(None))).all()
    assert len(running) == 2 and len(deferred) == 2
