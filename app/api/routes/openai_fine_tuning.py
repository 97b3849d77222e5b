"""OpenAI-compatible fine-tuning (client.fine_tuning): reinforcement jobs as native jobs, and graders."""

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import false, select
from sqlalchemy.orm import Session

from app.api.deps import CurrentTenant, IdempotencyKey, QueueDep, RewardRunnerDep, SessionDep, SettingsDep
from app.api.openai_errors import OpenAIRoute
from app.core.errors import not_found
from app.crud.jobs import get_job
from app.models import Checkpoint, Job, JobEvent, OpenAIJobInfo, Tenant
from app.schemas.openai_ft import FineTuningJob, FineTuningJobCreate, ListPage
from app.schemas.openai_graders import (
    GraderRunRequest,
    GraderRunResponse,
    GraderValidateRequest,
    GraderValidateResponse,
)
from app.services import jobs as native
from app.services import openai_ft as ft
from app.services import openai_graders, pause, rewards
from app.services.idempotency import run_idempotent

router = APIRouter(prefix="/fine_tuning", tags=["openai fine-tuning"], route_class=OpenAIRoute)
Limit = Annotated[int, Query(ge=1, le=100)]


def _job(session: Session, tenant: Tenant, job_id: str) -> Job:
    native_id = ft.parse_job_id(job_id)
    job = get_job(session=session, tenant_id=tenant.id, job_id=native_id) if native_id else None
    if job is None:
        raise not_found(f"fine-tuning job {job_id!r}")
    return job


def _present(session: Session, job: Job) -> FineTuningJob:
    return ft.present(job, session.get(OpenAIJobInfo, job.id))


@router.post("/jobs", response_model=FineTuningJob)
def create_job(
    body: FineTuningJobCreate,
    session: SessionDep,
    tenant: CurrentTenant,
    settings: SettingsDep,
    queue: QueueDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Create a reinforcement fine-tuning job; the answer shows every "auto" resolved."""

    def create() -> FineTuningJob:
        job_in, method, seed = ft.build_job(session=session, tenant=tenant, body=body)
        job = native.create_job(session=session, tenant=tenant, job_in=job_in, settings=settings, queue=queue)
        ft.record(session=session, job=job, body=body, method=method, seed=seed)
        return _present(session, job)

    payload = body.model_dump(mode="json")
    return run_idempotent(
        session=session, tenant_id=tenant.id, key=idempotency_key, scope="POST /v1/fine_tuning/jobs",
        payload=payload, status_code=200, create=create,
    )  # fmt: skip


@router.get("/jobs", response_model=ListPage)
def list_jobs(
    request: Request, session: SessionDep, tenant: CurrentTenant, after: str | None = None, limit: Limit = 20
) -> ListPage:
    """Newest first; `after` = the last id seen; `metadata[k]=v` keeps jobs whose metadata has k = v."""
    wanted = {k[len("metadata[") : -1]: v for k, v in request.query_params.items() if k.startswith("metadata[")}
    query = select(Job).where(Job.tenant_id == tenant.id)
    if after:
        query = query.where(ft.after_row(Job, _job(session, tenant, after), newest=True))
    query = query.order_by(Job.created_at.desc(), Job.id.desc())
    if wanted:  # metadata lives beside the job as JSON: filtered here, portable across databases
        query = query.join(OpenAIJobInfo, OpenAIJobInfo.job_id == Job.id)
        rows = [j for j in session.scalars(query) if _matches(session.get(OpenAIJobInfo, j.id), wanted)][: limit + 1]
    else:
        rows = list(session.scalars(query.limit(limit + 1)))
    return ListPage(data=[_present(session, job) for job in rows[:limit]], has_more=len(rows) > limit)


def _matches(info: OpenAIJobInfo | None, wanted: dict[str, str]) -> bool:
    return info is not None and all(info.labels.get(k) == v for k, v in wanted.items())


@router.get("/jobs/{job_id}", response_model=FineTuningJob)
def retrieve_job(job_id: str, session: SessionDep, tenant: CurrentTenant) -> FineTuningJob:
    return _present(session, _job(session, tenant, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=FineTuningJob)
def cancel_job(job_id: str, session: SessionDep, tenant: CurrentTenant) -> FineTuningJob:
    """At once if queued or paused, at the next step boundary if running; 409 once it has ended."""
    return _present(session, native.cancel_job(session=session, job=_job(session, tenant, job_id)))


@router.post("/jobs/{job_id}/pause", response_model=FineTuningJob)
def pause_job(job_id: str, session: SessionDep, tenant: CurrentTenant) -> FineTuningJob:
    """`pausing` until the current step is checkpointed, then `paused` (its worker freed)."""
    return _present(session, pause.pause_job(session=session, job=_job(session, tenant, job_id)))


@router.post("/jobs/{job_id}/resume", response_model=FineTuningJob)
def resume_job(job_id: str, session: SessionDep, tenant: CurrentTenant, queue: QueueDep) -> FineTuningJob:
    """Queue a paused job again; it continues from its latest checkpoint. 409 unless paused."""
    return _present(session, pause.resume_job(session=session, job=_job(session, tenant, job_id), queue=queue))


@router.get("/jobs/{job_id}/events", response_model=ListPage)
def list_events(
    job_id: str, session: SessionDep, tenant: CurrentTenant, after: str | None = None, limit: Limit = 20
) -> ListPage:
    """Newest first, as OpenAI; `after` = the last event id seen gives older ones."""
    job = _job(session, tenant, job_id)
    query = select(JobEvent).where(JobEvent.job_id == job.id)
    if after:
        before = after.removeprefix("ftevent-")
        query = query.where(JobEvent.id < int(before)) if before.isdigit() else query.where(false())
    rows = list(session.scalars(query.order_by(JobEvent.id.desc()).limit(limit + 1)))
    return ListPage(data=[ft.present_event(e) for e in rows[:limit]], has_more=len(rows) > limit)


@router.get("/jobs/{job_id}/checkpoints", response_model=ListPage)
def list_checkpoints(
    job_id: str, session: SessionDep, tenant: CurrentTenant, after: str | None = None, limit: Limit = 10
) -> ListPage:
    """Stored checkpoints, newest first; fine_tuned_model_checkpoint is a model id for /v1/chat/completions."""
    job = _job(session, tenant, job_id)
    query = select(Checkpoint).where(Checkpoint.job_id == job.id, Checkpoint.deleted_at.is_(None))
    if after:
        step = after.rsplit("-", 1)[-1]
        query = query.where(Checkpoint.step < int(step)) if step.isdigit() else query.where(false())
    rows = list(session.scalars(query.order_by(Checkpoint.step.desc()).limit(limit + 1)))
    return ListPage(data=[ft.present_checkpoint(job, c) for c in rows[:limit]], has_more=len(rows) > limit)


@router.post("/alpha/graders/validate", response_model=GraderValidateResponse)
def validate_grader(request: GraderValidateRequest, tenant: CurrentTenant) -> GraderValidateResponse:  # noqa: ARG001
    """Static checks: templates, python syntax and grade(), formula names; 400 naming the field."""
    grader = request.grader.model_dump(exclude_none=True)
    openai_graders.validate(grader)
    return GraderValidateResponse(grader=grader)


@router.post("/alpha/graders/run", response_model=GraderRunResponse)
async def run_grader(
    request: GraderRunRequest,
    tenant: CurrentTenant,  # noqa: ARG001 (authentication)
    runner: RewardRunnerDep,
) -> GraderRunResponse:
    """Score one sample with the reward the grader becomes (python in the sandbox, on a reward worker)."""
    grader = request.grader.model_dump(exclude_none=True)
    # the native reward-test service, as POST /v1/rewards:test uses it
    score = functools.partial(rewards.score_reward_samples, runner=runner)
    return await run_in_threadpool(
        lambda: openai_graders.run(grader, request.model_sample, dict(request.item), score=score)
    )
