"""The runner takes over a job whose worker was killed when the task is redelivered (issue 14 item 8);
the hand-over rules themselves are tested in tests/services/test_takeover.py."""

import uuid

from app.schemas.job import JobStatus
from app.services import runs
from tests.utils.factories import dead_worker_id, tiny_spec


def test_the_runner_resumes_a_job_whose_worker_was_killed_when_its_task_is_redelivered(
    client, auth, worker, session_factory
):
    job_id = client.post("/v1/jobs", json=tiny_spec(max_steps=2), headers=auth).json()["id"]
    with session_factory() as session:  # the first delivery's worker claimed it, then was killed
        runs.claim_job(session=session, job_id=uuid.UUID(job_id), worker_id=dead_worker_id(), max_attempts=3)
    job = worker.train(job_id)  # the redelivered message
    assert job.status == JobStatus.succeeded and job.attempts == 2 and job.worker_id == "w1"
