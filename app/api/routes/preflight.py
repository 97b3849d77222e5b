"""POST /v1/preflight: a worker samples the base model on the spec before any job spends a device."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import CurrentTenant, QueueDep, SessionDep, SettingsDep
from app.schemas.job import JobCreate
from app.schemas.preflight import PreflightPublic
from app.services import preflight

router = APIRouter(prefix="/preflight", tags=["preflight"])


@router.post("", response_model=PreflightPublic)
def run_preflight(
    job_in: JobCreate,
    session: SessionDep,
    tenant: CurrentTenant,
    settings: SettingsDep,
    queue: QueueDep,
    prompts: Annotated[int, Query(ge=1, le=32, description="Prompts to sample, group_size completions each.")] = 8,
) -> PreflightPublic:
    """Validate the spec as a worker would (model, tokenizer, dataset, rewards), sample `prompts` x group_size
    completions with the base model, score them, and answer the reward distribution, tied-group share, grader
    latency and errors, completion lengths and truncation, time and token estimates, and warnings. Runs on a
    worker; 503 when none answers in time, 422 naming the field when the spec cannot run."""
    return preflight.request_preflight(
        session=session, tenant=tenant, job_in=job_in, prompts=prompts, settings=settings, queue=queue
    )


@router.get("/{preflight_id}", response_model=PreflightPublic)
def read_preflight(preflight_id: uuid.UUID, session: SessionDep, tenant: CurrentTenant) -> PreflightPublic:
    """A preflight's state and report (for one that outlasted the POST's wait)."""
    return preflight.read_preflight(session=session, tenant=tenant, preflight_id=preflight_id)
