"""Job events and logged samples: ordered reads for pages and the live stream. Never commit."""

import uuid

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from app.models import JobEvent, JobSample


def events_after(
    *, session: Session, job_id: uuid.UUID, after_id: int, limit: int, types: list[str] | None = None
) -> list[JobEvent]:
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id)
    if types:
        query = query.where(JobEvent.type.in_(types))
    return list(session.scalars(query.order_by(JobEvent.id).limit(limit)))


def list_samples(
    *,
    session: Session,
    job_id: uuid.UUID,
    step_gte: int | None,
    step_lte: int | None,
    after: tuple[int, int, int] | None,
    limit: int,
) -> list[JobSample]:
    """Samples in (step, prompt_index, group_index) order, after the given key."""
    query = select(JobSample).where(JobSample.job_id == job_id)
    if step_gte is not None:
        query = query.where(JobSample.step >= step_gte)
    if step_lte is not None:
        query = query.where(JobSample.step <= step_lte)
    if after is not None:
        query = query.where(tuple_(JobSample.step, JobSample.position) > after)
    return list(session.scalars(query.order_by(JobSample.step, JobSample.position).limit(limit)))
