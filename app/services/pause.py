"""Pause and resume. Owns its commits.

API side: a queued job pauses at once (its broker message is then ignored by the claim); a running
job becomes `pausing`, and its worker, at the next step boundary, checkpoints that step and lets go
of the job (`paused`, see workers/runner.py). Resume puts a paused job back in the queue; whichever
worker claims it continues from the latest checkpoint, exactly as after a crash.

Worker side: `settle_paused` (the worker stopped at a step boundary) and `settle_lost_pausing` (the
watchdog: a pausing job whose worker died is paused at its latest checkpoint, not requeued).
"""

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import ProblemError
from app.core.queue import JobQueue
from app.models import Job
from app.models.base import utcnow
from app.schemas.job import TERMINAL_STATUSES, JobStatus
from app.services import budgets, slots
from app.services.transitions import transition

logger = logging.getLogger(__name__)


def pause_job(*, session: Session, job: Job, reason: str = "requested") -> Job:
    """Pause a queued or running job; a pausing or paused one is returned unchanged. 409 once it ended."""
    if job.status in TERMINAL_STATUSES:
        raise ProblemError(409, "job_finished", f"the job is already {job.status.value}")
    data = {"reason": reason}
    paused_now = transition(
        session,
        job.id,
        from_={JobStatus.queued},
        to=JobStatus.paused,
        message="job paused before it started",
        event_data=data,
        deferred_at=None,
    ) or transition(
        session,
        job.id,
        from_={JobStatus.running},
        to=JobStatus.pausing,
        message="pause requested; the job pauses after its current step and a checkpoint",
        event_data=data,
    )
    session.commit()
    session.refresh(job)
    if not paused_now and job.status in TERMINAL_STATUSES:  # it ended between the read and the update
        raise ProblemError(409, "job_finished", f"the job is already {job.status.value}")
    return job


def resume_job(*, session: Session, job: Job, queue: JobQueue) -> Job:
    """paused -> queued, then enqueue; the worker that claims it resumes from the latest checkpoint."""
    if job.status in TERMINAL_STATUSES:
        raise ProblemError(409, "job_finished", f"the job is already {job.status.value}")
    if job.status == JobStatus.pausing:
        raise ProblemError(409, "job_pausing", "the job is still pausing (finishing its step); resume it once paused")
    if job.status == JobStatus.paused:
        budgets.refuse_if_spent(session=session, job_id=job.id)
    resumed = transition(
        session,
        job.id,
        from_={JobStatus.paused},
        to=JobStatus.queued,
        message="job resumed; queued to continue from its latest checkpoint",
        event_data={"resumed": True},
    )
    session.commit()
    session.refresh(job)
    if not resumed:
        raise ProblemError(409, "job_not_paused", f"only a paused job can be resumed; this one is {job.status.value}")
    try:
        queue.enqueue_training(job.id)
    except Exception:  # the broker is down: mark it deferred, the watchdog's next sweep enqueues it
        logger.warning("could not enqueue resumed job %s; the watchdog retries", job.id, exc_info=True)
        slots.mark_again(session, job.id)
    return job


def settle_paused(
    *, session: Session, job_id: uuid.UUID, worker_id: str, reason: str, message: str, data: dict[str, Any]
) -> bool:
    """The worker stopped at a step boundary after checkpointing: running | pausing -> paused.

    Attempts restart from zero: a clean pause is no lost worker, and a job paused many times must not
    run out of the attempts meant for crashes.
    """
    paused = transition(
        session,
        job_id,
        from_={JobStatus.running, JobStatus.pausing},
        to=JobStatus.paused,
        message=message,
        event_data={"reason": reason, **data},
        owned_by=worker_id,
        worker_id=None,
        attempts=0,
    )
    session.commit()
    return paused


def settle_lost_pausing(*, session: Session, timeout: timedelta, now: datetime | None = None) -> list[uuid.UUID]:
    """Pausing jobs whose heartbeat stopped: paused (their latest checkpoint is the resume point)."""
    deadline = (now or utcnow()) - timeout
    stale = session.scalars(select(Job.id).where(Job.status == JobStatus.pausing, Job.heartbeat_at < deadline)).all()
    settled = [
        job_id
        for job_id in stale
        if transition(
            session,
            job_id,
            from_={JobStatus.pausing},
            to=JobStatus.paused,
            message="the worker was lost while pausing; paused at the latest checkpoint",
            event_data={"reason": "requested"},
            worker_id=None,
        )
    ]
    session.commit()
    return settled
