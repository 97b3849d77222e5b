"""Job lifecycle on the worker side: claim, per-step progress, heartbeat, finish, orphan recovery.

Plain functions over a session, so the Celery task stays thin and the tests can drive them directly.
"""

import logging
import math
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, exists, insert, literal, select, update
from sqlalchemy.orm import Session

from app.crud.metrics import upsert_samples, upsert_step_metrics
from app.models import Job, JobEvent, JobMetric
from app.models.base import utcnow
from app.schemas.job import JobStatus
from app.schemas.status import EventLevel, EventType
from app.services import slots
from app.services.transitions import transition

logger = logging.getLogger(__name__)


def claim_job(*, session: Session, job_id: uuid.UUID, worker_id: str, max_attempts: int) -> Job | None:
    """queued -> running for exactly one worker, within the tenant's running-job limit.

    None when the job is not queued (a duplicate delivery) or its tenant has no free slot: the job is
    then marked deferred and released again when a slot frees (app.services.slots).
    """
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.status != JobStatus.queued:
        return None
    if job.attempts >= max_attempts:
        transition(
            session,
            job_id,
            from_={JobStatus.queued},
            to=JobStatus.failed,
            finished_at=utcnow(),
            error={
                "code": "too_many_attempts",
                "param": None,
                "message": f"the job was started {job.attempts} times and its worker was lost each time",
            },
        )
        session.commit()
        return None
    now = utcnow()
    slots.lock_tenant(session, job.tenant_id)
    claimed = transition(
        session,
        job_id,
        from_={JobStatus.queued},
        to=JobStatus.running,
        message=f"job running (attempt {job.attempts + 1})",
        event_data={"attempt": job.attempts + 1},
        conditions=[slots.below_running_limit(job.tenant_id)],
        attempts=Job.attempts + 1,
        worker_id=worker_id,
        heartbeat_at=now,
        started_at=job.started_at or now,
        deferred_at=None,
    )
    if not claimed:
        slots.defer(session, job)  # no-op unless the job is still queued: then the tenant had no free slot
    session.commit()
    if not claimed:
        return None
    session.refresh(job)
    return job


def take_over_job(*, session: Session, seen: Job, worker_id: str, max_attempts: int, reason: str) -> Job | None:
    """Hand a running job whose worker is gone (`reason` says how we know) to `worker_id` at once.

    `seen` is the job as the caller read it. The hand-over is fenced: it happens only if the job is still
    running under the same owner, attempt and heartbeat as seen, so of several redelivered tasks (or a task
    and the watchdog) exactly one wins, and an owner that was merely slow and beat since keeps its job.
    It is the watchdog's requeue (running -> queued) and a claim (queued -> running, attempt + 1) in one
    transaction, so the events and the attempt count read as they do after a watchdog recovery.
    """
    requeued = transition(
        session,
        seen.id,
        from_={JobStatus.running},
        to=JobStatus.queued,
        message=f"{reason}; taken over to resume from its latest checkpoint",
        event_data={"took_over_from": seen.worker_id},
        owned_by=seen.worker_id,
        conditions=[
            Job.attempts == seen.attempts,
            Job.heartbeat_at.is_(None) if seen.heartbeat_at is None else Job.heartbeat_at == seen.heartbeat_at,
        ],
        worker_id=None,
    )
    if not requeued:
        session.rollback()
        return None
    return claim_job(session=session, job_id=seen.id, worker_id=worker_id, max_attempts=max_attempts)


class StepOutcome(StrEnum):
    """What the worker does after recording a step."""

    proceed = "continue"  # go on training
    cancel = "cancel"  # the user asked to cancel: stop at this step boundary
    lost = "lost"  # this worker no longer owns the job: stop without writing anything
    pause = "pause"  # the user (or a budget) asked to pause: checkpoint this step and let go of the job


# A pausing job is still its worker's until it stops at the next step boundary (app/services/pause.py).
WORKER_HELD = (JobStatus.running, JobStatus.pausing)


def record_step(
    *,
    session: Session,
    job_id: uuid.UUID,
    worker_id: str,
    step: int,
    metrics: dict[str, float],
    step_seconds: float,
    samples: list[dict[str, Any]] | None = None,
) -> StepOutcome:
    """Write one step's metrics, samples and progress in one transaction (four statements and a commit:
    this runs every step of every job).

    `lost` means this worker no longer owns the job (it was declared dead and requeued while it was
    stalled): nothing is written and the caller must stop. `cancel`: the user asked to stop; `pause`: to pause.
    """
    finite = {name: value for name, value in metrics.items() if math.isfinite(value)}
    now = utcnow()
    owned = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.status.in_(WORKER_HELD))
        .values(
            current_step=step,
            latest_metrics=finite,
            heartbeat_at=now,
            train_seconds=Job.train_seconds + step_seconds,
            steps_recorded=Job.steps_recorded + 1,
        )
        .returning(Job.cancel_requested, Job.status)
        .execution_options(synchronize_session=False)
    ).first()
    if owned is None:
        session.rollback()
        return StepOutcome.lost
    upsert_step_metrics(session=session, job_id=job_id, step=step, metrics=finite)
    upsert_samples(session=session, job_id=job_id, step=step, samples=samples or [])
    session.execute(_announce_step(job_id, step, finite, now))
    session.commit()
    if owned.cancel_requested:
        return StepOutcome.cancel
    return StepOutcome.pause if owned.status == JobStatus.pausing else StepOutcome.proceed


def _announce_step(job_id: uuid.UUID, step: int, values: dict[str, float], now: datetime) -> Any:
    """INSERT the step's 'metrics' event unless it exists: a step re-run after a resume is announced once."""
    events = JobEvent.__table__
    announced = select(events.c.id).where(events.c.job_id == job_id, events.c.type == "metrics", events.c.step == step)
    row = select(
        bindparam("job_id", job_id, type_=events.c.job_id.type),
        literal("metrics"),
        literal("info"),
        literal(f"step {step}"),
        bindparam("data", {"step": step, "values": values}, type_=events.c.data.type),
        literal(step),
        bindparam("created_at", now, type_=events.c.created_at.type),
    ).where(~exists(announced))
    columns = ["job_id", "type", "level", "message", "data", "step", "created_at"]
    return insert(events).from_select(columns, row)


def add_event(
    *,
    session: Session,
    job_id: uuid.UUID,
    type_: EventType,
    message: str,
    level: EventLevel = EventLevel.info,
    data: dict[str, Any] | None = None,
) -> None:
    session.add(JobEvent(job_id=job_id, type=type_, level=level, message=message, data=data or {}))
    session.commit()


def beat(*, session: Session, job_id: uuid.UUID, worker_id: str) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.status.in_(WORKER_HELD))
        .values(heartbeat_at=utcnow())
    )
    session.commit()


def finish_job(
    *,
    session: Session,
    job_id: uuid.UUID,
    worker_id: str,
    to: JobStatus,
    error: dict[str, Any] | None = None,
    message: str = "",
) -> bool:
    finished = transition(
        session,
        job_id,
        from_=set(WORKER_HELD),
        to=to,
        message=message,
        owned_by=worker_id,
        finished_at=utcnow(),
        error=error,
    )
    session.commit()
    return finished


def requeue_orphaned_jobs(
    *,
    session: Session,
    timeout: timedelta,
    max_attempts: int,
    now: datetime | None = None,
    known_dead: Callable[[str | None], bool] = lambda _worker_id: False,
) -> list[uuid.UUID]:
    """Running jobs whose heartbeat stopped, or whose worker is `known_dead` (its process is gone): back to
    queued (to be resumed), or failed after max_attempts.

    Returns the ids to enqueue again. Safe to run from several workers: transition() is conditional.
    """
    deadline = (now or utcnow()) - timeout
    running = session.scalars(select(Job).where(Job.status == JobStatus.running)).all()
    stale = [job for job in running if _older(job.heartbeat_at, deadline) or known_dead(job.worker_id)]
    requeue: list[uuid.UUID] = []
    for job in stale:
        silent_for = lost_reason(job, dead=not _older(job.heartbeat_at, deadline))
        if job.attempts >= max_attempts:
            transition(
                session,
                job.id,
                from_={JobStatus.running},
                to=JobStatus.failed,
                finished_at=utcnow(),
                error={
                    "code": "worker_lost",
                    "param": None,
                    "message": f"{silent_for}; gave up after {job.attempts} attempts",
                },
            )
        elif transition(
            session,
            job.id,
            from_={JobStatus.running},
            to=JobStatus.queued,
            message=f"{silent_for}; requeued to resume from its latest checkpoint",
            worker_id=None,
        ):
            requeue.append(job.id)
        session.commit()
    return requeue


def _older(moment: datetime | None, deadline: datetime) -> bool:
    return moment is not None and moment < deadline


def lost_reason(job: Job, *, dead: bool) -> str:
    """Why a job's worker counts as lost, for its status event and error message."""
    if dead:
        return f"worker {job.worker_id} is gone (its process exited)"
    if job.heartbeat_at is None:
        return f"no heartbeat from worker {job.worker_id}"
    return f"no heartbeat from worker {job.worker_id} since {job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC"


def record_alert(
    *, session: Session, job_id: uuid.UUID, code: str, message: str, step: int, data: dict[str, Any]
) -> None:
    """A reward-hacking alert: listed on the job and sent as an 'alert' event (once per step and code)."""
    job = session.get(Job, job_id)
    assert job is not None
    alert = {"code": code, "message": message, "step": step}
    if alert not in (job.alerts or []):
        job.alerts = [*(job.alerts or []), alert]
        session.add(
            JobEvent(
                job_id=job_id,
                type=EventType.alert,
                level=EventLevel.warning,
                step=step,
                message=message,
                data={"code": code, **data},
            )
        )
    session.commit()


def metric_history(*, session: Session, job_id: uuid.UUID, up_to_step: int) -> list[tuple[int, dict[str, float]]]:
    """The recorded metrics of steps 1..up_to_step, for rebuilding state (the monitor) on resume."""
    rows = session.execute(
        select(JobMetric.step, JobMetric.name, JobMetric.value)
        .where(JobMetric.job_id == job_id, JobMetric.step <= up_to_step)
        .order_by(JobMetric.step)
    )
    history: dict[int, dict[str, float]] = {}
    for step, name, value in rows:
        history.setdefault(step, {})[name] = value
    return sorted(history.items())
