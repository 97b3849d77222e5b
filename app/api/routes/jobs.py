import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, status
from fastapi.responses import JSONResponse

from app.api.deps import CurrentTenant, Idempotent, QueueDep, SessionDep, SettingsDep, StoreDep
from app.api.params import CreatedAfter, CreatedBefore, Cursor, FilterText, Limit, NameContains, StepQuery
from app.api.presenters import job_public
from app.core.errors import not_found
from app.crud import jobs as crud
from app.schemas.job import JobPublic, JobsPublic, JobStatus
from app.schemas.manifest import JobSubmission, ResolvedSpec
from app.schemas.metric import MetricsPublic, StepMetrics
from app.services import jobs as service
from app.services import manifest as manifests

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobPublic,
    responses={200: {"model": ResolvedSpec, "description": "dry_run=true: the resolved spec; no job."}},
)
def create_job(
    submission: Annotated[JobSubmission, Body()],
    session: SessionDep,
    tenant: CurrentTenant,
    settings: SettingsDep,
    queue: QueueDep,
    store: StoreDep,
    idempotent: Idempotent,
    dry_run: Annotated[bool, Query(description="Answer the resolved spec and create no job.")] = False,
) -> JobPublic | JSONResponse:
    """Submit a training job. It starts `queued`; a worker picks it up.

    The body is a job spec, or `{"reproduce": {"job_id", "step"}}` to run the spec of that checkpoint's
    manifest again. Send an `Idempotency-Key` header to make retries safe: the same key and body return the
    first response (with `Idempotent-Replayed: true`), the same key with another body is a 409."""
    job_in = manifests.job_to_submit(session=session, store=store, tenant=tenant, submission=submission)
    if dry_run:
        resolved = manifests.resolve(session=session, tenant=tenant, job_in=job_in, settings=settings)
        return JSONResponse(resolved.model_dump(mode="json"))
    return idempotent.run(
        submission,
        lambda: job_public(
            service.create_job(session=session, tenant=tenant, job_in=job_in, settings=settings, queue=queue)
        ),
    )


@router.get("", response_model=JobsPublic)
def list_jobs(
    session: SessionDep,
    tenant: CurrentTenant,
    limit: Limit = 20,
    cursor: Cursor = None,
    status: JobStatus | None = None,
    name: NameContains = None,
    created_after: CreatedAfter = None,
    created_before: CreatedBefore = None,
) -> JobsPublic:
    """The caller's jobs, newest first (ties broken by id, so pages never skip or repeat a job)."""
    jobs, next_cursor = crud.list_jobs(
        session=session,
        tenant_id=tenant.id,
        limit=limit,
        cursor=cursor,
        status=status,
        name=name,
        created_after=created_after,
        created_before=created_before,
    )
    return JobsPublic(data=[job_public(job) for job in jobs], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobPublic)
def read_job(job_id: uuid.UUID, session: SessionDep, tenant: CurrentTenant) -> JobPublic:
    job = crud.get_job(session=session, tenant_id=tenant.id, job_id=job_id)
    if job is None:
        raise not_found("job")
    return job_public(job)


@router.post("/{job_id}/cancel", response_model=JobPublic)
def cancel_job(job_id: uuid.UUID, session: SessionDep, tenant: CurrentTenant) -> JobPublic:
    """Cancel a job: at once if queued, at the next step boundary if running. 409 if already finished."""
    job = crud.get_job(session=session, tenant_id=tenant.id, job_id=job_id)
    if job is None:
        raise not_found("job")
    return job_public(service.cancel_job(session=session, job=job))


@router.get("/{job_id}/metrics", response_model=MetricsPublic)
def read_metrics(
    job_id: uuid.UUID,
    session: SessionDep,
    tenant: CurrentTenant,
    name: Annotated[list[FilterText] | None, Query(description="Only these metrics (repeat the parameter).")] = None,
    step_gte: StepQuery = None,
    step_lte: StepQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Steps per page.")] = 200,
    cursor: Cursor = None,
) -> MetricsPublic:
    """Per-step metrics in ascending step order."""
    if crud.get_job(session=session, tenant_id=tenant.id, job_id=job_id) is None:
        raise not_found("job")
    grouped, next_cursor = crud.list_metric_steps(
        session=session, job_id=job_id, names=name, step_gte=step_gte, step_lte=step_lte, cursor=cursor, limit=limit
    )
    return MetricsPublic(data=[StepMetrics(step=s, values=v) for s, v in grouped.items()], next_cursor=next_cursor)
