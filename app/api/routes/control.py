"""Pause and resume a job (app/services/pause.py); change its budget (app/services/budgets.py)."""

import uuid

from fastapi import APIRouter

from app.api.deps import CurrentTenant, QueueDep, SessionDep
from app.api.presenters import job_public
from app.core.errors import ProblemError, not_found
from app.crud import jobs as crud
from app.schemas.budget import Budget
from app.schemas.job import TERMINAL_STATUSES, JobPublic
from app.services import budgets, pause

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


@router.patch("/{job_id}/budget", response_model=JobPublic)
def set_budget(job_id: uuid.UUID, budget: Budget, session: SessionDep, tenant: CurrentTenant) -> JobPublic:
    """Replace the job's budget (omitted fields: no limit). A running job checks it after every step; a job
    paused by a budget can be resumed once the budget is above what it has used. 409 once it has ended."""
    job = crud.get_job(session=session, tenant_id=tenant.id, job_id=job_id)
    if job is None:
        raise not_found("job")
    if job.status in TERMINAL_STATUSES:
        raise ProblemError(409, "job_finished", f"the job is already {job.status.value}")
    return job_public(budgets.set_job_budget(session=session, job=job, budget=budget))
