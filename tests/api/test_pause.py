"""Pause and resume through the API: the state machine, on both databases (the worker side is simulated
with the same service calls a worker makes; tests/workers/test_pause_resume.py runs a real one)."""

import uuid
from datetime import timedelta

import pytest

from app.models import Job, JobEvent
from app.models.base import utcnow
from app.schemas.job import TERMINAL_STATUSES, JobStatus
from app.services import pause, runs
from app.services.transitions import ALLOWED, InvalidTransition, check_transition
from tests.conftest import tiny_spec


def submit(client, auth) -> dict:
    response = client.post("/v1/jobs", json=tiny_spec(max_steps=5), headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def claim(session_factory, job_id: str) -> None:
    with session_factory() as session:
        assert runs.claim_job(session=session, job_id=uuid.UUID(job_id), worker_id="w1", max_attempts=3)


def statuses(session_factory, job_id: str) -> list[str]:
    with session_factory() as session:
        events = session.query(JobEvent).filter_by(job_id=uuid.UUID(job_id), type="status").order_by(JobEvent.id)
        return [e.data["status"] for e in events]


def test_pause_and_resume_transitions_are_exactly_these():
    assert ALLOWED[JobStatus.pausing] == {JobStatus.paused, JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled}
    assert ALLOWED[JobStatus.paused] == {JobStatus.queued, JobStatus.cancelled}
    assert JobStatus.paused in ALLOWED[JobStatus.queued] and JobStatus.pausing in ALLOWED[JobStatus.running]
    with pytest.raises(InvalidTransition):
        check_transition(JobStatus.paused, JobStatus.running)  # a paused job is queued again, never run directly
    with pytest.raises(InvalidTransition):
        check_transition(JobStatus.pausing, JobStatus.running)
    assert not {JobStatus.pausing, JobStatus.paused} & TERMINAL_STATUSES


def test_pause_a_queued_job_at_once_and_its_queued_message_is_ignored(client, auth, session_factory, queue):
    job = submit(client, auth)
    paused = client.post(f"/v1/jobs/{job['id']}/pause", headers=auth)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    with session_factory() as session:  # the broker still delivers the submit's message: not claimed
        assert runs.claim_job(session=session, job_id=uuid.UUID(job["id"]), worker_id="w1", max_attempts=3) is None
    resumed = client.post(f"/v1/jobs/{job['id']}/resume", headers=auth)
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
    assert queue.enqueued == [uuid.UUID(job["id"])] * 2
    assert statuses(session_factory, job["id"]) == ["queued", "paused", "queued"]


def test_pause_a_running_job_then_the_worker_pauses_it_and_any_worker_resumes(client, auth, session_factory):
    job = submit(client, auth)
    claim(session_factory, job["id"])
    pausing = client.post(f"/v1/jobs/{job['id']}/pause", headers=auth).json()
    assert pausing["status"] == "pausing"
    # Resume before the step ends is refused (the worker still holds the job).
    early = client.post(f"/v1/jobs/{job['id']}/resume", headers=auth)
    assert early.status_code == 409 and early.json()["code"] == "job_pausing"
    job_id = uuid.UUID(job["id"])
    with session_factory() as session:  # the worker's next step boundary: still its job, told to pause
        outcome = runs.record_step(session=session, job_id=job_id, worker_id="w1", step=1, metrics={}, step_seconds=1)
        assert outcome == "pause"
        runs.beat(session=session, job_id=job_id, worker_id="w1")
        assert pause.settle_paused(
            session=session, job_id=job_id, worker_id="w1", reason="requested", message="paused", data={}
        )
        row = session.get(Job, job_id)
        assert row.status == JobStatus.paused and row.worker_id is None and row.attempts == 0
    client.post(f"/v1/jobs/{job['id']}/resume", headers=auth).raise_for_status()
    with session_factory() as session:  # another worker claims it
        assert runs.claim_job(session=session, job_id=job_id, worker_id="w2", max_attempts=1) is not None
    assert statuses(session_factory, job["id"]) == ["queued", "running", "pausing", "paused", "queued", "running"]


def test_double_pause_is_a_no_op_and_resume_of_an_unpaused_job_is_409(client, auth, session_factory):
    job = submit(client, auth)
    not_paused = client.post(f"/v1/jobs/{job['id']}/resume", headers=auth)
    assert not_paused.status_code == 409 and not_paused.json()["code"] == "job_not_paused"
    claim(session_factory, job["id"])
    first = client.post(f"/v1/jobs/{job['id']}/pause", headers=auth).json()
    second = client.post(f"/v1/jobs/{job['id']}/pause", headers=auth)
    assert second.status_code == 200 and second.json()["status"] == first["status"] == "pausing"
    assert statuses(session_factory, job["id"]).count("pausing") == 1


def test_cancel_a_paused_job_at_once_and_pause_of_a_finished_job_is_409(client, auth):
    job = submit(client, auth)
    client.post(f"/v1/jobs/{job['id']}/pause", headers=auth).raise_for_status()
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth).json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    for action in ("pause", "resume"):
        again = client.post(f"/v1/jobs/{job['id']}/{action}", headers=auth)
        assert again.status_code == 409 and again.json()["code"] == "job_finished"


def test_a_pausing_job_still_ends_normally_and_can_be_cancelled(client, auth, session_factory):
    job = submit(client, auth)
    claim(session_factory, job["id"])
    client.post(f"/v1/jobs/{job['id']}/pause", headers=auth).raise_for_status()
    cancel = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth).json()
    assert cancel["status"] == "pausing" and cancel["cancel_requested"]
    job_id = uuid.UUID(job["id"])
    with session_factory() as session:  # cancel wins over pause at the step boundary
        assert runs.record_step(session=session, job_id=job_id, worker_id="w1", step=1, metrics={}, step_seconds=1) == (
            "cancel"
        )
        assert runs.finish_job(session=session, job_id=job_id, worker_id="w1", to=JobStatus.cancelled)


def test_other_tenants_get_404(client, auth, other_auth):
    job = submit(client, auth)
    for action in ("pause", "resume"):
        response = client.post(f"/v1/jobs/{job['id']}/{action}", headers=other_auth)
        assert response.status_code == 404


def test_watchdog_pauses_a_pausing_job_whose_worker_died(client, auth, session_factory):
    job = submit(client, auth)
    claim(session_factory, job["id"])
    client.post(f"/v1/jobs/{job['id']}/pause", headers=auth).raise_for_status()
    with session_factory() as session:
        assert pause.settle_lost_pausing(session=session, timeout=timedelta(minutes=1)) == []
        later = utcnow() + timedelta(minutes=5)
        assert pause.settle_lost_pausing(session=session, timeout=timedelta(minutes=1), now=later) == [
            uuid.UUID(job["id"])
        ]
        assert session.get(Job, uuid.UUID(job["id"])).status == JobStatus.paused
