"""How a delivered training task becomes the job's one owner: claim a queued job, or take over a running job
whose worker is gone, so a task redelivered after its worker was killed resumes the job at once instead of
being refused and leaving the job to the watchdog's heartbeat timeout (minutes).

A running job is taken over when its owner is known dead (a process of this machine that no longer exists,
workers/liveness.py), or when its heartbeat is older than settings.takeover_after_s (three beat intervals).
Otherwise the task waits, watching the heartbeat: if it moves, the owner is alive and this delivery was a
duplicate (return None); if it stops, the job is taken over. Every hand-over is one fenced, conditional
UPDATE (app/services/runs.py::take_over_job), so two deliveries never both win.
"""

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.models import Job
from app.models.base import utcnow
from app.schemas.job import JobStatus
from app.services import runs
from workers.liveness import known_dead

logger = logging.getLogger(__name__)


def claim_or_take_over(
    *,
    session_factory: sessionmaker[Session],
    job_id: uuid.UUID,
    worker_id: str,
    settings: Settings,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = utcnow,
) -> Job | None:
    """The job, now owned by `worker_id`; None when it is not ours to run (duplicate, cancelled, no slot)."""
    takeover_after = timedelta(seconds=settings.takeover_after_s)
    first_beat: datetime | None = None
    # Long enough to see a live owner's next beat or its heartbeat go stale, and bounded either way.
    for _ in range(int(settings.takeover_after_s / settings.heartbeat_interval_s) + 3):
        with session_factory() as session:
            job = session.get(Job, job_id)
            if job is None or job.status != JobStatus.running or job.worker_id == worker_id:
                return runs.claim_job(
                    session=session, job_id=job_id, worker_id=worker_id, max_attempts=settings.max_job_attempts
                )
            dead = known_dead(job.worker_id)
            if dead or job.heartbeat_at is None or now() - job.heartbeat_at > takeover_after:
                reason = runs.lost_reason(job, dead=dead)
                logger.warning("job %s: %s; taking it over", job_id, reason)
                return runs.take_over_job(
                    session=session,
                    seen=job,
                    worker_id=worker_id,
                    max_attempts=settings.max_job_attempts,
                    reason=reason,
                )
            if first_beat is not None and job.heartbeat_at != first_beat:
                logger.info("job %s runs on live worker %s: this delivery is a duplicate", job_id, job.worker_id)
                return None
            first_beat = job.heartbeat_at
        sleep(settings.heartbeat_interval_s)
    return None
