"""Reproducibility: a checkpoint's manifest (written by the worker, workers/manifest.py), a new job from
one, and a dry run's resolved spec. Never runs user code or loads a model (the API process)."""

import hashlib
import json
import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import ProblemError, not_found
from app.core.storage import ObjectStore
from app.crud.jobs import get_job
from app.models import Dataset, Tenant
from app.schemas.job import JobCreate
from app.schemas.manifest import CheckpointManifest, ReproduceRequest, ResolvedSpec
from app.services.artifacts import latest_checkpoint
from app.services.jobs import pin_reward_references
from app.services.spec_checks import check_spec

MANIFEST_FILE = "manifest.json"


def canonical_hash(value: Any) -> str:
    """sha256 of the value's canonical JSON: key order and whitespace do not change it."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def read_manifest(
    *, session: Session, store: ObjectStore, tenant: Tenant, job_id: uuid.UUID, step: int
) -> CheckpointManifest:
    """The manifest of a stored checkpoint of the tenant's job; 404 when either is missing."""
    if get_job(session=session, tenant_id=tenant.id, job_id=job_id) is None:
        raise not_found("job")
    checkpoint = latest_checkpoint(session=session, job_id=job_id, step=step)
    if checkpoint is None:
        raise not_found("checkpoint")
    key = f"{checkpoint.storage_key}/{MANIFEST_FILE}"
    if not store.exists(key):
        raise ProblemError(404, "manifest_missing", "this checkpoint has no manifest (it predates manifests)")
    with store.open(key) as source:
        return CheckpointManifest.model_validate(json.load(source))


def spec_to_reproduce(*, session: Session, store: ObjectStore, tenant: Tenant, request: ReproduceRequest) -> JobCreate:
    origin = request.reproduce
    manifest = read_manifest(session=session, store=store, tenant=tenant, job_id=origin.job_id, step=origin.step)
    spec = {**manifest.spec, **({"name": request.name} if request.name else {})}
    try:
        return JobCreate.model_validate(spec)
    except ValidationError as exc:  # a manifest of an older spec version that no longer validates
        raise ProblemError(
            422, "manifest_outdated", f"the manifest's spec is no longer valid: {exc.errors()[0]['msg']}"
        ) from exc


def resolve(*, session: Session, tenant: Tenant, job_in: JobCreate, settings: Settings) -> ResolvedSpec:
    """What create_job would store, checked the same way, without creating anything."""
    job_in, _ = pin_reward_references(session=session, tenant=tenant, job_in=job_in)
    check_spec(job_in, settings, session=session, tenant_id=tenant.id)
    if job_in.dataset.rows is not None:
        dataset: dict[str, Any] = {"rows": len(job_in.dataset.rows), "hash": canonical_hash(job_in.dataset.rows)}
    else:
        row = session.scalar(select(Dataset).where(Dataset.id == job_in.dataset.dataset_id))
        dataset = {"rows": row.row_count, "file_sha256": row.sha256} if row else {}
    return ResolvedSpec(spec=job_in.model_dump(mode="json"), dataset=dataset)


def job_to_submit(
    *, session: Session, store: ObjectStore, tenant: Tenant, submission: JobCreate | ReproduceRequest
) -> JobCreate:
    if isinstance(submission, ReproduceRequest):
        return spec_to_reproduce(session=session, store=store, tenant=tenant, request=submission)
    return submission
