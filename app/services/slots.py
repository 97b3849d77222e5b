"""Per-tenant limit on concurrently running jobs.

A worker claims a job only while its tenant runs fewer than `max_running_jobs`; the count is checked
inside the claiming UPDATE, after taking the tenant row's lock on PostgreSQL (SQLite serialises
writers anyway), so two workers cannot both take the last slot. A job that finds no slot stays
`queued` and is marked `deferred_at`; its broker message is acknowledged, so nothing holds a worker.
When a job of the tenant ends (and on every watchdog sweep, in case that moment was missed) the
oldest deferred jobs that now fit are unmarked and enqueued again.
"""

import uuid

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session, aliased

from app.models import Job, JobEvent, Tenant
from app.models.base import utcnow
from app.schemas.job import JobStatus

# A pausing job still holds its worker until the step in progress ends.
HOLDING_A_WORKER = (JobStatus.running, JobStatus.pausing)


def lock_tenant(session: Session, tenant_id: uuid.UUID) -> None:
    """SELECT ... FOR UPDATE of the tenant row: claims and releases of one tenant take turns."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())


def running_count(session: Session, tenant_id: uuid.UUID) -> int:
    query = select(func.count()).where(Job.tenant_id == tenant_id, Job.status.in_(HOLDING_A_WORKER))
    return session.scalar(query) or 0


def below_running_limit(tenant_id: uuid.UUID) -> ColumnElement[bool]:
    """A condition for the claiming UPDATE of one of the tenant's jobs."""
    other = aliased(Job)
    running = (
        select(func.count())
        .select_from(other)
        .where(other.tenant_id == tenant_id, other.status.in_(HOLDING_A_WORKER))
        .scalar_subquery()
    )
    limit = select(Tenant.max_running_jobs).where(Tenant.id == tenant_id).scalar_subquery()
    return running < limit


def defer(session: Session, job: Job) -> None:
    """Mark a queued job as waiting for a slot; the first time, tell its owner why. Does not commit."""
    marked = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == JobStatus.queued, Job.deferred_at.is_(None))
        .values(deferred_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not marked:
        return
    limit = session.scalar(select(Tenant.max_running_jobs).where(Tenant.id == job.tenant_id))
    session.add(
        JobEvent(
            job_id=job.id,
            type="waiting",
            message=f"waiting for a free slot: this tenant may run {limit} jobs at once",
            data={"max_running_jobs": limit},
        )
    )


def release_deferred(session: Session, tenant_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Unmark the oldest deferred jobs that now fit under their tenant's limit; the caller enqueues them.

    Commits once per tenant. A job is unmarked by exactly one caller (a conditional UPDATE), so two
    workers releasing at once do not enqueue it twice.
    """
    if tenant_id is not None:
        tenants = [tenant_id]
    else:
        waiting = select(Job.tenant_id).where(Job.status == JobStatus.queued, Job.deferred_at.is_not(None))
        tenants = list(session.scalars(waiting.distinct()))
    released: list[uuid.UUID] = []
    for tenant in tenants:
        lock_tenant(session, tenant)
        limit = session.scalar(select(Tenant.max_running_jobs).where(Tenant.id == tenant)) or 0
        free = limit - running_count(session, tenant)
        if free > 0:
            candidates = session.scalars(
                select(Job.id)
                .where(Job.tenant_id == tenant, Job.status == JobStatus.queued, Job.deferred_at.is_not(None))
                .order_by(Job.created_at, Job.id)
                .limit(free)
            ).all()
            for job_id in candidates:
                if unmark(session, job_id):
                    released.append(job_id)
        session.commit()
    return released


def unmark(session: Session, job_id: uuid.UUID) -> bool:
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued, Job.deferred_at.is_not(None))
        .values(deferred_at=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_again(session: Session, job_id: uuid.UUID) -> None:
    """After a failed enqueue: mark the job deferred again so the next sweep retries it."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued)
        .values(deferred_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
