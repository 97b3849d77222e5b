"""Pause and resume a job (app/services/pause.py)."""

import uuid

from fastapi import APIRouter

from app.api.deps import CurrentTenant, QueueDep, SessionDep
from app.api.presenters import job_public
from app.core.errors import not_found
from app.crud import jobs as crud
from app.schemas.job import JobPublic
from app.services import pause

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post("/{job_id}/pause", response_model=JobPublic)
def pause_job(job_id: uuid.UUID, session: SessionDep, tenant: CurrentTenant) -> JobPublic:
    """Pause a job: at once if queued (`paused`); if running, `pausing` until its current step ends and is
    checkpointed, then `paused` with its worker freed. A pausing or paused job is returned unchanged;
    409 once it has ended."""
    job = crud.get_job(session=session, tenant_id=tenant.id, job_id=job_id)
    if job is None:
        raise not_found("job")
    return job_public(pause.pause_job(session=session, job=job))


@router.post("/{job_id}/resume", response_model=JobPublic)
def resume_job(job_id: uuid.UUID, session: SessionDep, tenant: CurrentTenant, queue: QueueDep) -> JobPublic:
    """Queue a paused job again; it continues from its latest checkpoint, with the same results as a run
    that was never paused. 409 unless the job is `paused`."""
    job = crud.get_job(session=session, tenant_id=tenant.id, job_id=job_id)
    if job is None:
        raise not_found("job")
    return job_public(pause.resume_job(session=session, job=job, queue=queue))
