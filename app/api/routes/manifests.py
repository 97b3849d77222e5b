"""GET a checkpoint's reproducibility manifest (app/services/manifest.py)."""

import uuid

from fastapi import APIRouter

from app.api.deps import CurrentTenant, SessionDep, StoreDep
from app.api.params import StepPath
from app.schemas.manifest import CheckpointManifest
from app.services import manifest

router = APIRouter(prefix="/jobs/{job_id}", tags=["artifacts"])


@router.get("/checkpoints/{step}/manifest", response_model=CheckpointManifest)
def read_manifest(
    job_id: uuid.UUID, step: StepPath, session: SessionDep, tenant: CurrentTenant, store: StoreDep
) -> CheckpointManifest:
    """What produced the checkpoint: the resolved spec, dataset hash and row count, reward versions and hashes,
    base model and weight-file hashes, seed, package versions, device, ranks and step. Resubmit it with
    `POST /v1/jobs {"reproduce": {"job_id", "step"}}`."""
    return manifest.read_manifest(session=session, store=store, tenant=tenant, job_id=job_id, step=step)
