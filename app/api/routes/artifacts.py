import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import StreamingResponse

from app.api.deps import CurrentTenant, Idempotent, QueueDep, SessionDep, SettingsDep, StoreDep
from app.api.params import CreatedAfter, CreatedBefore, Cursor, Limit, StepPath, StepQuery
from app.core.errors import ProblemError, not_found, spec_error
from app.core.tarstream import tar_stream
from app.crud.artifacts import list_job_evaluations, list_stored_checkpoints
from app.crud.events import list_samples
from app.crud.jobs import get_job
from app.models import Checkpoint, Job
from app.schemas.artifact import (
    CheckpointPublic,
    CheckpointsPublic,
    EvaluationCreate,
    EvaluationPublic,
    EvaluationsPublic,
    EvaluationStatus,
    EvaluationTrigger,
    SamplePublic,
    SamplesPublic,
)
from app.schemas.status import MergeStatus
from app.schemas.storable import MAX_INT32
from app.services.artifacts import latest_checkpoint, model_files
from app.services.evaluations import request_evaluation
from app.services.merges import request_merge

router = APIRouter(prefix="/jobs/{job_id}", tags=["artifacts"])
Variant = Literal["model", "full", "merged"]


def _job(session: SessionDep, tenant: CurrentTenant, job_id: uuid.UUID) -> Job:
    job = get_job(session=session, tenant_id=tenant.id, job_id=job_id)
    if job is None:
        raise not_found("job")
    return job


def _checkpoint_public(store: StoreDep, checkpoint: Checkpoint) -> CheckpointPublic:
    files = model_files(store, checkpoint, "model")
    return CheckpointPublic.model_validate(checkpoint).model_copy(
        update={"files": [name for name, _ in files], "model_bytes": sum(size for _, size in files)}
    )


@router.get("/checkpoints", response_model=CheckpointsPublic)
def list_checkpoints(
    job_id: uuid.UUID,
    session: SessionDep,
    tenant: CurrentTenant,
    step_gte: StepQuery = None,
    step_lte: StepQuery = None,
    created_after: CreatedAfter = None,
    created_before: CreatedBefore = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
) -> CheckpointsPublic:
    """Stored checkpoints, oldest first (retention may have removed older ones)."""
    _job(session, tenant, job_id)
    page, next_cursor = list_stored_checkpoints(
        session=session,
        job_id=job_id,
        step_gte=step_gte,
        step_lte=step_lte,
        created=(created_after, created_before),
        cursor=cursor,
        limit=limit,
    )
    return CheckpointsPublic(data=[CheckpointPublic.model_validate(c) for c in page], next_cursor=next_cursor)


@router.get("/checkpoints/{step}", response_model=CheckpointPublic)
def read_checkpoint(
    job_id: uuid.UUID,
    step: StepPath,
    session: SessionDep,
    tenant: CurrentTenant,
    store: StoreDep,
) -> CheckpointPublic:
    """One stored checkpoint: step, time, size, metrics, eval score, the files of its model download and,
    for LoRA checkpoints, the state of the merged download."""
    _job(session, tenant, job_id)
    checkpoint = latest_checkpoint(session=session, job_id=job_id, step=step)
    if checkpoint is None:
        raise not_found("checkpoint")
    return _checkpoint_public(store, checkpoint)


@router.get(
    "/checkpoints/{step}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-tar": {}}, "description": "A tar archive, streamed."}},
)
def download_checkpoint(
    job_id: uuid.UUID,
    step: StepPath,
    session: SessionDep,
    tenant: CurrentTenant,
    store: StoreDep,
    variant: Annotated[
        Variant,
        Query(
            description="'model': what from_pretrained (or peft) loads; 'full': also "
            "optimiser and RNG state to resume elsewhere; 'merged': a LoRA adapter "
            "merged into its base model, a plain model (once POST .../merge is ready)."
        ),
    ] = "model",
) -> StreamingResponse:
    """Download a checkpoint as a tar archive: `tar xf` it, then `from_pretrained` the directory."""
    _job(session, tenant, job_id)
    checkpoint = latest_checkpoint(session=session, job_id=job_id, step=step)
    if checkpoint is None:
        raise not_found("checkpoint")
    if variant == "merged" and checkpoint.merge_status != MergeStatus.succeeded:
        hint = (
            f"POST /v1/jobs/{job_id}/checkpoints/{step}/merge first (merge status: {checkpoint.merge_status})"
            if checkpoint.is_adapter
            else "not a LoRA checkpoint; ?variant=model is the full model"
        )
        raise ProblemError(409, "variant_unavailable", f"no merged model for this checkpoint: {hint}")
    files = model_files(store, checkpoint, variant)
    if not files:
        raise ProblemError(409, "variant_unavailable", f"no {variant} files for this checkpoint")
    root = f"{job_id}-step{step:06d}" + ("-merged" if variant == "merged" else "")
    strip = "merged/" if variant == "merged" else ""
    members = [(name.removeprefix(strip), size) for name, size in files]
    stream = tar_stream(members, lambda name: store.open(f"{checkpoint.storage_key}/{strip}{name}"), root)
    headers = {"Content-Disposition": f'attachment; filename="{root}.tar"'}
    return StreamingResponse(stream, media_type="application/x-tar", headers=headers)


@router.post(
    "/checkpoints/{step}/merge",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CheckpointPublic,
    responses={409: {"description": "The checkpoint is a full model, not a LoRA adapter."}},
)
def merge_checkpoint(
    job_id: uuid.UUID, step: StepPath, session: SessionDep, tenant: CurrentTenant, store: StoreDep, queue: QueueDep
) -> CheckpointPublic:
    """Merge a LoRA checkpoint's adapters into its base model (a worker task). Poll GET .../checkpoints/{step}
    until `merge_status` is 'succeeded', then download `?variant=merged`: a plain model for stock from_pretrained.
    Asking again re-runs a failed or lost merge; a ready one is kept."""
    _job(session, tenant, job_id)
    checkpoint = request_merge(session=session, job_id=job_id, step=step, queue=queue)
    if checkpoint is None:
        raise not_found("checkpoint")
    return _checkpoint_public(store, checkpoint)


@router.get("/samples", response_model=SamplesPublic)
def read_samples(
    job_id: uuid.UUID,
    session: SessionDep,
    tenant: CurrentTenant,
    step: Annotated[int | None, Query(ge=0, le=MAX_INT32, description="Only this step.")] = None,
    step_gte: StepQuery = None,
    step_lte: StepQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
) -> SamplesPublic:
    """Logged completions with their reward breakdown and advantage, in step order."""
    _job(session, tenant, job_id)
    if step is not None:
        step_gte = step_lte = step
    page, next_cursor = list_samples(
        session=session, job_id=job_id, step_gte=step_gte, step_lte=step_lte, cursor=cursor, limit=limit
    )
    return SamplesPublic(data=[SamplePublic.model_validate(s) for s in page], next_cursor=next_cursor)


@router.get("/evaluations", response_model=EvaluationsPublic)
def list_evaluations(
    job_id: uuid.UUID,
    session: SessionDep,
    tenant: CurrentTenant,
    status: EvaluationStatus | None = None,
    trigger: EvaluationTrigger | None = None,
    created_after: CreatedAfter = None,
    created_before: CreatedBefore = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> EvaluationsPublic:
    """Scheduled and on-demand evaluations, oldest first."""
    _job(session, tenant, job_id)
    page, next_cursor = list_job_evaluations(
        session=session,
        job_id=job_id,
        status=status,
        trigger=trigger,
        created=(created_after, created_before),
        limit=limit,
        cursor=cursor,
    )
    return EvaluationsPublic(data=[EvaluationPublic.model_validate(e) for e in page], next_cursor=next_cursor)


@router.post("/evaluations", status_code=status.HTTP_202_ACCEPTED, response_model=EvaluationPublic)
def create_evaluation(
    job_id: uuid.UUID,
    evaluation_in: EvaluationCreate,
    session: SessionDep,
    tenant: CurrentTenant,
    queue: QueueDep,
    settings: SettingsDep,
    idempotent: Idempotent,
) -> EvaluationPublic:
    """Evaluate a stored checkpoint now (a separate worker task); poll GET .../evaluations for the result."""
    job = _job(session, tenant, job_id)
    if evaluation_in.rows is not None and evaluation_in.dataset_id is not None:
        raise spec_error("rows", "give rows or dataset_id, not both")
    return idempotent.run(
        evaluation_in,
        lambda: EvaluationPublic.model_validate(
            request_evaluation(session=session, job=job, evaluation_in=evaluation_in, queue=queue, settings=settings)
        ),
    )
