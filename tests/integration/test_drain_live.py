"""SIGTERM to a real Celery worker (what `docker stop` sends): its running job finishes the step, checkpoints,
goes back to the queue and the worker exits; the next worker resumes the job from that checkpoint."""

import os
import signal

import pytest

from tests.integration.helpers import tiny_job, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sigterm_drains_the_worker_and_the_job_resumes(api, stack):
    spec = tiny_job(max_steps=60, checkpoint={"every": 1000, "keep_last": 2})
    job_id = api.post("/v1/jobs", json=spec).raise_for_status().json()["id"]
    wait_for(api, job_id, until={"running"}, min_step=2)
    assert stack.worker is not None
    os.kill(stack.worker.pid, signal.SIGTERM)  # the main process only, as an orchestrator does
    assert stack.worker.wait(timeout=120) == 0  # a clean exit, not a kill
    job = api.get(f"/v1/jobs/{job_id}").raise_for_status().json()
    assert job["status"] == "queued"
    drained_at = job["progress"]["step"]
    checkpoints = api.get(f"/v1/jobs/{job_id}/checkpoints").raise_for_status().json()["data"]
    assert [c["step"] for c in checkpoints] == [drained_at]  # the drain checkpoint (every is 1000)
    events = api.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    assert any("worker draining" in e["message"] and "requeued" in e["message"] for e in events)

    stack.restart_worker()
    done = wait_for(api, job_id, timeout_s=400)
    assert done["status"] == "succeeded", done["error"]
    events = api.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    resumed = [e for e in events if e["type"] == "resumed"]
    assert [e["data"]["checkpoint"] for e in resumed] == [f"checkpoint-{drained_at:06d}"]
