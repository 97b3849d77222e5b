"""The job state machine and the worker-side lifecycle (claim, finish, orphan recovery)."""

from datetime import timedelta

import pytest

from app.models import Job, JobEvent
from app.models.base import utcnow
from app.schemas.job import TERMINAL_STATUSES, JobStatus
from app.services import runs
from app.services.transitions import ALLOWED, InvalidTransition, check_transition, transition
from tests.utils.factories import make_job


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
@pytest.mark.parametrize("target", list(JobStatus))
def test_no_transition_out_of_a_terminal_state(terminal, target):
    with pytest.raises(InvalidTransition):
        check_transition(terminal, target)


def test_allowed_transitions_are_exactly_the_lifecycle():
    assert ALLOWED[JobStatus.queued] == {JobStatus.running, JobStatus.cancelled, JobStatus.failed, JobStatus.paused}
    assert ALLOWED[JobStatus.running] == {
        JobStatus.succeeded,
        JobStatus.failed,
        JobStatus.cancelled,
        JobStatus.queued,
        JobStatus.pausing,
        JobStatus.paused,
    }


def test_transition_is_conditional_and_records_an_event(session_factory):
    with session_factory() as session:
        job_id = make_job(session)
        assert transition(session, job_id, from_={JobStatus.queued}, to=JobStatus.cancelled)
        session.commit()
        # A second, racing transition from the old state loses instead of overwriting.
        assert not transition(session, job_id, from_={JobStatus.queued}, to=JobStatus.running)
        session.commit()
        assert session.get(Job, job_id).status == JobStatus.cancelled
        events = session.query(JobEvent).filter_by(job_id=job_id).all()
        assert [e.data["status"] for e in events] == ["cancelled"]


def test_only_one_worker_claims_a_job(session_factory):
    with session_factory() as session:
        job_id = make_job(session)
        first = runs.claim_job(session=session, job_id=job_id, worker_id="w1", max_attempts=3)
        second = runs.claim_job(session=session, job_id=job_id, worker_id="w2", max_attempts=3)
        assert first is not None and first.worker_id == "w1" and first.attempts == 1
        assert second is None


def test_a_stalled_worker_cannot_write_or_finish_a_job_it_lost(session_factory):
    with session_factory() as session:
        job_id = make_job(session)
        runs.claim_job(session=session, job_id=job_id, worker_id="w1", max_attempts=3)
        session.execute(Job.__table__.update().values(heartbeat_at=utcnow() - timedelta(hours=1)))
        session.commit()
        assert runs.requeue_orphaned_jobs(session=session, timeout=timedelta(seconds=60), max_attempts=3) == [job_id]
        runs.claim_job(session=session, job_id=job_id, worker_id="w2", max_attempts=3)
        assert (
            runs.record_step(
                session=session, job_id=job_id, worker_id="w1", step=1, metrics={"x": 1.0}, step_seconds=1.0
            )
            == "lost"
        )
        assert not runs.finish_job(session=session, job_id=job_id, worker_id="w1", to=JobStatus.succeeded)
        assert runs.finish_job(session=session, job_id=job_id, worker_id="w2", to=JobStatus.succeeded)
        job = session.get(Job, job_id)
        session.refresh(job)
        assert job.status == JobStatus.succeeded and job.attempts == 2


def test_orphans_are_failed_after_max_attempts(session_factory):
    with session_factory() as session:
        job_id = make_job(session)
        runs.claim_job(session=session, job_id=job_id, worker_id="w1", max_attempts=1)
        fresh = make_job(session)
        runs.claim_job(session=session, job_id=fresh, worker_id="w2", max_attempts=1)
        session.execute(
            Job.__table__.update().where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1))
        )
        session.commit()
        assert runs.requeue_orphaned_jobs(session=session, timeout=timedelta(seconds=60), max_attempts=1) == []
        lost, alive = session.get(Job, job_id), session.get(Job, fresh)
        session.refresh(lost)
        assert lost.status == JobStatus.failed and lost.error["code"] == "worker_lost"
        assert alive.status == JobStatus.running  # its heartbeat is fresh
