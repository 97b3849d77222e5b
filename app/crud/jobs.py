"""Small job queries. Keyword-only, tenant-scoped, never commit."""

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.crud.pagination import after_key, decode_cursor, encode_cursor, filter_created_and_name, newest_first_page
from app.models import Job, JobMetric
from app.schemas.job import JobStatus


def get_job(*, session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    """None for a missing job and for another tenant's job alike, so ids do not leak."""
    return session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))


def list_jobs(
    *,
    session: Session,
    tenant_id: uuid.UUID,
    limit: int,
    cursor: str | None = None,
    status: JobStatus | None = None,
    name: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> tuple[list[Job], str | None]:
    """A page of the tenant's jobs, newest first, and the next page's cursor."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Job.status == status)
    query = filter_created_and_name(query, Job, name=name, created_after=created_after, created_before=created_before)
    return newest_first_page(session, query, Job, limit=limit, cursor=cursor)


def count_jobs(*, session: Session, tenant_id: uuid.UUID, statuses: set[JobStatus]) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id, Job.status.in_(statuses))
        )
        or 0
    )


def list_metric_steps(
    *,
    session: Session,
    job_id: uuid.UUID,
    names: list[str] | None,
    step_gte: int | None,
    step_lte: int | None,
    cursor: str | None,
    limit: int,
) -> tuple[dict[int, dict[str, float]], str | None]:
    """Metrics grouped by step, for at most `limit` steps in ascending order, and the next page's cursor."""
    conditions = [JobMetric.job_id == job_id]
    if names:
        conditions.append(JobMetric.name.in_(names))
    if step_gte is not None:
        conditions.append(JobMetric.step >= step_gte)
    if step_lte is not None:
        conditions.append(JobMetric.step <= step_lte)
    if cursor:
        conditions.append(after_key([JobMetric.step], decode_cursor(cursor, [JobMetric.step]), descending=False))
    found = list(
        session.scalars(select(JobMetric.step).where(*conditions).distinct().order_by(JobMetric.step).limit(limit + 1))
    )
    steps = found[:limit]
    next_cursor = encode_cursor([steps[-1]]) if len(found) > limit else None
    if not steps:
        return {}, None
    rows = session.execute(
        select(JobMetric.step, JobMetric.name, JobMetric.value)
        .where(*conditions, JobMetric.step.in_(steps))
        .order_by(JobMetric.step, JobMetric.name)
    )
    grouped: dict[int, dict[str, float]] = {step: {} for step in steps}
    for step, name, value in rows:
        grouped[step][name] = value
    return grouped, next_cursor
