"""Checkpoint and evaluation listings of one job (the caller checked the job is the tenant's). Never commit."""

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.crud.pagination import filter_created_and_name, keyset_page, oldest_first_page
from app.models import Checkpoint, Evaluation

CreatedRange = tuple[datetime | None, datetime | None]


def list_stored_checkpoints(
    *,
    session: Session,
    job_id: uuid.UUID,
    step_gte: int | None,
    step_lte: int | None,
    created: CreatedRange,
    cursor: str | None,
    limit: int,
) -> tuple[list[Checkpoint], str | None]:
    """Checkpoints still in storage, in step order (a step has at most one), and the next page's cursor."""
    query = select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.deleted_at.is_(None))
    query = filter_created_and_name(query, Checkpoint, created_after=created[0], created_before=created[1])
    if step_gte is not None:
        query = query.where(Checkpoint.step >= step_gte)
    if step_lte is not None:
        query = query.where(Checkpoint.step <= step_lte)
    return keyset_page(session, query, [Checkpoint.step, Checkpoint.id], limit=limit, cursor=cursor)


def list_job_evaluations(
    *,
    session: Session,
    job_id: uuid.UUID,
    status: str | None,
    trigger: str | None,
    created: CreatedRange,
    limit: int,
    cursor: str | None,
) -> tuple[list[Evaluation], str | None]:
    query = select(Evaluation).where(Evaluation.job_id == job_id)
    if status is not None:
        query = query.where(Evaluation.status == status)
    if trigger is not None:
        query = query.where(Evaluation.trigger == trigger)
    query = filter_created_and_name(query, Evaluation, created_after=created[0], created_before=created[1])
    return oldest_first_page(session, query, Evaluation, limit=limit, cursor=cursor)
