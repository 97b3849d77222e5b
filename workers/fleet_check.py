"""The worker-side half of routing: a job this worker cannot run (or a draining worker) is not claimed.

Only happens without declared worker classes (every job then comes through the `grpo` queue): the job
stays queued, marked deferred (the watchdog offers it again every sweep, to whichever worker takes the
message), with one event per kind of worker saying what the job waits for.
"""

import logging
import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.models import Job, JobEvent
from app.models.base import utcnow
from app.schemas.job import JobStatus
from app.schemas.resources import ResourcesSpec, describe
from workers.drain import flags_for_this_task, is_draining
from workers.fleet import worker_offer

logger = logging.getLogger(__name__)


def fleet_check(
    *, session_factory: sessionmaker[Session], job_id: uuid.UUID, settings: Settings, worker_id: str
) -> bool:
    """True when this worker may claim the job (it fits, or the job is gone / not queued: claim decides)."""
    with session_factory() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != JobStatus.queued:
            return True
        if is_draining(flags_for_this_task(settings.data_dir)):
            # A message that reached a worker already shutting down: leave the job for the next worker
            # (deferred jobs are enqueued again by every worker's watchdog sweep, the first at its start).
            _defer(session, job_id)
            session.commit()
            logger.info("job %s not claimed: this worker is draining", job_id)
            return False
        resources = ResourcesSpec.model_validate((job.spec or {}).get("resources") or {})
        offer = worker_offer(settings)
        if offer.fits(resources):
            return True
        offered = f"{offer.devices} x {offer.accelerator}"
        seen = session.scalars(select(JobEvent.data).where(JobEvent.job_id == job_id, JobEvent.type == "waiting")).all()
        if not any((data or {}).get("offered") == offered for data in seen):
            message = f"waits for a worker with {describe(resources)}; worker {worker_id} offers {offered}"
            session.add(JobEvent(job_id=job_id, type="waiting", message=message, data={"offered": offered}))
        # deferred: the watchdog's sweep enqueues it again (slots.release_deferred), maybe to a worker that fits
        _defer(session, job_id)
        session.commit()
    logger.info("job %s does not fit this worker (%s); left queued", job_id, offered)
    return False


def _defer(session: Session, job_id: uuid.UUID) -> None:
    session.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.queued).values(deferred_at=utcnow()))
