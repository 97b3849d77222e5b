"""A running job handed back to the queue by its own worker (not found dead by the watchdog).

Two reasons: the worker drains (SIGTERM: it finished its step and checkpointed, so the attempt does not
count), or one rank of a multi-device job died (the launcher tore the group down: the attempt counts,
as for a lost worker, and the job resumes from its latest checkpoint).
"""

import uuid

from sqlalchemy.orm import Session

from app.models import Job
from app.schemas.job import JobStatus
from app.services.transitions import transition


def requeue_own_job(*, session: Session, job_id: uuid.UUID, worker_id: str, reason: str, count_attempt: bool) -> bool:
    """running -> queued if `worker_id` still owns the job; the caller enqueues it again. The claim step
    fails it once attempts reach the limit, as for any requeued job."""
    values = {} if count_attempt else {"attempts": Job.attempts - 1}
    requeued = transition(
        session,
        job_id,
        from_={JobStatus.running},
        to=JobStatus.queued,
        message=f"{reason}; requeued to resume from its latest checkpoint",
        event_data={"reason": reason, "attempt_counted": count_attempt},
        owned_by=worker_id,
        worker_id=None,
        **values,
    )
    session.commit()
    return requeued
