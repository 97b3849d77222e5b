"""Which models a tenant may call, and what the inference worker must load for each id.

Model ids (docs/inference.md):
  <name>                  a base model the operator allows (GRPO_INFERENCE_BASE_MODELS), e.g. 'tiny-demo'
  <job_id>:ckpt-<step>    a stored checkpoint of one of the tenant's jobs
  <job_id>:latest         that job's newest stored checkpoint (moves as training goes on)
Another tenant's job, a deleted checkpoint or a malformed id are all the same 404 model_not_found.
"""

import re
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import FieldError, ProblemError
from app.models import Checkpoint, InferenceUsage, Job, Tenant
from app.schemas.openai import ModelObject

_CHECKPOINT_ID = re.compile(r"^(?P<job>[0-9a-fA-F-]{32,36}):(?:ckpt-(?P<step>\d{1,9})|(?P<latest>latest))$")
SERVICE_OWNER = "grpo-service"
_BASE_CREATED = 0  # base models have no creation time of their own


def model_not_found(model_id: str) -> ProblemError:
    return ProblemError(
        404,
        "model_not_found",
        f"The model '{model_id}' does not exist or you do not have access to it.",
        errors=[FieldError(field="model", message="no such model", type="model_not_found")],
    )


def _stamp(moment: datetime) -> int:
    return int(moment.timestamp())


def list_models(*, session: Session, tenant: Tenant, settings: Settings) -> list[ModelObject]:
    """Base models first, then every stored checkpoint of the tenant's jobs (jobs newest first) with
    the job's ':latest' alias before its steps."""
    models = [
        ModelObject(id=name, created=_BASE_CREATED, owned_by=SERVICE_OWNER) for name in settings.inference_base_models
    ]
    rows = session.execute(
        select(Checkpoint.job_id, Checkpoint.step, Checkpoint.created_at)
        .join(Job, Job.id == Checkpoint.job_id)
        .where(Job.tenant_id == tenant.id, Checkpoint.deleted_at.is_(None))
        .order_by(Job.created_at.desc(), Job.id, Checkpoint.step.desc())
    ).all()
    seen: set[uuid.UUID] = set()
    for job_id, step, created in rows:
        if job_id not in seen:
            seen.add(job_id)
            models.append(ModelObject(id=f"{job_id}:latest", created=_stamp(created), owned_by=tenant.name))
        models.append(ModelObject(id=f"{job_id}:ckpt-{step}", created=_stamp(created), owned_by=tenant.name))
    return models


def find_model(
    *, session: Session, tenant: Tenant, settings: Settings, model_id: str
) -> tuple[ModelObject, dict[str, Any]]:
    """(the public model object, the spec the inference worker loads); 404 model_not_found otherwise."""
    if model_id in settings.inference_base_models:
        spec = {"id": model_id, "kind": "base", "source": model_id}
        return ModelObject(id=model_id, created=_BASE_CREATED, owned_by=SERVICE_OWNER), spec
    match = _CHECKPOINT_ID.match(model_id)
    if match is None:
        raise model_not_found(model_id)
    try:
        job_id = uuid.UUID(match["job"])
    except ValueError:
        raise model_not_found(model_id) from None
    query = (
        select(Checkpoint)
        .join(Job, Job.id == Checkpoint.job_id)
        .where(Job.id == job_id, Job.tenant_id == tenant.id, Checkpoint.deleted_at.is_(None))
    )
    if match["step"] is not None:
        query = query.where(Checkpoint.step == int(match["step"]))
    checkpoint = session.scalar(query.order_by(Checkpoint.step.desc()).limit(1))
    if checkpoint is None:
        raise model_not_found(model_id)
    spec = {
        "id": model_id,
        "kind": "checkpoint",
        "storage_key": checkpoint.storage_key,
        "is_adapter": checkpoint.is_adapter,
    }
    return ModelObject(id=model_id, created=_stamp(checkpoint.created_at), owned_by=tenant.name), spec


def record_usage(
    *, session: Session, tenant_id: uuid.UUID, model: str, prompt_tokens: int, completion_tokens: int
) -> None:
    session.add(
        InferenceUsage(
            tenant_id=tenant_id, model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    )
    session.commit()


def usage_totals(*, session: Session, tenant_id: uuid.UUID, since: datetime | None) -> list[dict[str, Any]]:
    """Requests and tokens per model for the tenant (since `since`, if given), most tokens first."""
    query = select(
        InferenceUsage.model,
        func.count(),
        func.sum(InferenceUsage.prompt_tokens),
        func.sum(InferenceUsage.completion_tokens),
    ).where(InferenceUsage.tenant_id == tenant_id)
    if since is not None:
        query = query.where(InferenceUsage.created_at >= since)
    rows = session.execute(query.group_by(InferenceUsage.model)).all()
    totals = [
        {"model": m, "requests": int(n), "prompt_tokens": int(p or 0), "completion_tokens": int(c or 0)}
        for m, n, p, c in rows
    ]
    return sorted(totals, key=lambda t: -(t["prompt_tokens"] + t["completion_tokens"]))
