"""Job events and logged samples: ordered reads for pages and the live stream. Never commit."""

import uuid

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.crud.pagination import keyset_page
from app.models import JobEvent, JobSample


def _events(job_id: uuid.UUID, types: list[str] | None) -> Select[tuple[JobEvent]]:
    query = select(JobEvent).where(JobEvent.job_id == job_id)
    return query.where(JobEvent.type.in_(types)) if types else query


def events_after(
    *, session: Session, job_id: uuid.UUID, after_id: int, limit: int, types: list[str] | None = None
) -> list[JobEvent]:
    """For the live stream, which resumes from an event id (SSE's Last-Event-ID)."""
    query = _events(job_id, types).where(JobEvent.id > after_id)
    return list(session.scalars(query.order_by(JobEvent.id).limit(limit)))


def list_events(
    *, session: Session, job_id: uuid.UUID, after_id: int, cursor: str | None, limit: int, types: list[str] | None
) -> tuple[list[JobEvent], str | None]:
    """A page of events in order; `after_id` is the older `?after=` (an event id), `cursor` the contract."""
    query = _events(job_id, types).where(JobEvent.id > after_id)
    return keyset_page(session, query, [JobEvent.id], limit=limit, cursor=cursor)


def list_samples(
    *,
    session: Session,
    job_id: uuid.UUID,
    step_gte: int | None,
    step_lte: int | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[JobSample], str | None]:
    """A page of samples in (step, position) order, and the next page's cursor."""
    query = select(JobSample).where(JobSample.job_id == job_id)
    if step_gte is not None:
        query = query.where(JobSample.step >= step_gte)
    if step_lte is not None:
        query = query.where(JobSample.step <= step_lte)
    return keyset_page(session, query, [JobSample.step, JobSample.position], limit=limit, cursor=cursor)
