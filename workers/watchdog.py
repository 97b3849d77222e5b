"""Finds jobs and on-demand evaluations whose worker died (no heartbeat): jobs are requeued (to resume
from their latest checkpoint, or failed after max attempts), evaluations are failed with the reason.
It also enqueues again jobs that waited for a free slot of their tenant's running-job limit.

Runs as a daemon thread inside every worker process, sweeping at start-up and then every heartbeat
interval. A job whose worker process is known to be gone (same machine, workers/liveness.py) is requeued
at once, so a worker restarted after a kill -9 resumes its job within its start-up time. Redis can
redeliver an unacked message of a killed worker by itself, but only after its visibility timeout (longer
than any job), and the SQLite broker never does: the heartbeat is what makes recovery prompt on both.
(A killed pool child is another matter: its worker puts the message back at once, and the redelivered
task takes the job over itself, workers/claiming.py.)
"""

import logging
import threading
import uuid
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.queue import JobQueue
from app.services import slots
from app.services.evaluation_runs import fail_stale_evaluations
from app.services.pause import settle_lost_pausing
from app.services.runs import requeue_orphaned_jobs
from workers.liveness import known_dead

logger = logging.getLogger(__name__)


def release_waiting_jobs(
    *, session_factory: sessionmaker[Session], queue: JobQueue, tenant_id: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Enqueue deferred jobs that now fit under their tenant's limit (all tenants when none is given)."""
    with session_factory() as session:
        released = slots.release_deferred(session, tenant_id)
        for job_id in released:
            try:
                queue.enqueue_training(job_id)
            except Exception:  # the broker is down: mark it again, the next sweep retries
                logger.warning("could not enqueue released job %s", job_id, exc_info=True)
                slots.mark_again(session, job_id)
            else:
                logger.info("job %s has a free slot now; enqueued", job_id, extra={"job_id": str(job_id)})
    return released


def sweep_once(*, session_factory: sessionmaker[Session], queue: JobQueue, settings: Settings) -> int:
    with session_factory() as session:
        job_ids = requeue_orphaned_jobs(
            session=session,
            timeout=timedelta(seconds=settings.heartbeat_timeout_s),
            max_attempts=settings.max_job_attempts,
            known_dead=known_dead,
        )
    for job_id in job_ids:
        logger.warning("job %s lost its worker; requeued", job_id, extra={"job_id": str(job_id)})
        queue.enqueue_training(job_id)
    with session_factory() as session:
        paused = settle_lost_pausing(session=session, timeout=timedelta(seconds=settings.heartbeat_timeout_s))
    for job_id in paused:
        logger.warning("job %s lost its worker while pausing; paused", job_id, extra={"job_id": str(job_id)})
    with session_factory() as session:
        timeout = timedelta(seconds=settings.heartbeat_timeout_s)
        evaluation_ids = fail_stale_evaluations(session=session, timeout=timeout)
    for evaluation_id in evaluation_ids:
        logger.warning("evaluation %s lost its worker; marked failed", evaluation_id)
    release_waiting_jobs(session_factory=session_factory, queue=queue)
    return len(job_ids) + len(paused) + len(evaluation_ids)


def start_watchdog(*, session_factory: sessionmaker[Session], queue: JobQueue, settings: Settings) -> threading.Event:
    """Sweep now and then every heartbeat interval; set the returned event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                sweep_once(session_factory=session_factory, queue=queue, settings=settings)
            except Exception:
                logger.warning("watchdog sweep failed", exc_info=True)
            if stop.wait(settings.heartbeat_interval_s):
                return

    threading.Thread(target=loop, name="job-watchdog", daemon=True).start()
    return stop
