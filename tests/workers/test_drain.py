"""Graceful drain: a worker told to stop finishes its step, checkpoints, requeues the job (the attempt does not
count) and returns; the next worker resumes from that checkpoint."""

import os
import uuid

from sqlalchemy import select

from app.models import Checkpoint, Job, JobEvent
from tests.conftest import RecordingQueue, tiny_spec
from workers.drain import clear_mark, drain_dir, flags_for_this_task, mark_draining
from workers.runner import run_job


def test_draining_worker_checkpoints_requeues_and_the_job_resumes(client, auth, settings, session_factory, monkeypatch):
    spec = tiny_spec(max_steps=3)
    spec["checkpoint"] = {"every": 100}  # only the drain and the end checkpoint
    job_id = uuid.UUID(client.post("/v1/jobs", json=spec, headers=auth).json()["id"])
    queue = RecordingQueue()
    # The job was claimed just before the SIGTERM (a draining worker claims nothing new, see below).
    monkeypatch.setattr("workers.fleet_check.is_draining", lambda _flags: False)
    mark = mark_draining(settings.data_dir)  # as the Celery main process does on SIGTERM (solo pool: same pid)
    try:
        run_job(job_id=job_id, settings=settings, session_factory=session_factory, worker_id="w1", queue=queue)
    finally:
        clear_mark(settings.data_dir)
    assert not mark.exists()
    with session_factory() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "queued" and job.attempts == 0 and job.current_step == 1
        steps = session.scalars(select(Checkpoint.step).where(Checkpoint.job_id == job_id)).all()
        messages = session.scalars(select(JobEvent.message).where(JobEvent.job_id == job_id)).all()
    assert steps == [1]  # the drain checkpoint, though checkpoint.every is 100
    assert any("worker draining" in m and "requeued" in m for m in messages)
    assert queue.enqueued == [job_id]

    monkeypatch.undo()
    run_job(job_id=job_id, settings=settings, session_factory=session_factory, worker_id="w2", queue=queue)
    with session_factory() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "succeeded" and job.attempts == 1
        resumed = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "resumed")).all()
    assert [event.data["checkpoint"] for event in resumed] == ["checkpoint-000001"]


def test_a_task_sees_its_pool_parents_mark_or_its_own(tmp_path):
    flags = flags_for_this_task(tmp_path)
    assert flags == [drain_dir(tmp_path) / str(os.getppid()), drain_dir(tmp_path) / str(os.getpid())]


def test_a_draining_worker_claims_no_new_job(client, auth, settings, session_factory):
    job_id = uuid.UUID(client.post("/v1/jobs", json=tiny_spec(max_steps=1), headers=auth).json()["id"])
    mark_draining(settings.data_dir)
    try:
        run_job(job_id=job_id, settings=settings, session_factory=session_factory, worker_id="w1")
    finally:
        clear_mark(settings.data_dir)
    with session_factory() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "queued" and job.attempts == 0
        assert job.deferred_at is not None  # the next worker's watchdog sweep enqueues it again
