"""The reproducibility manifest of a checkpoint, a reproduce request, and a dry run's answer."""

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from app.schemas.job import JobCreate
from app.schemas.storable import MAX_INT32


class CheckpointManifest(BaseModel):
    """What produced a checkpoint (written by the worker as manifest.json inside the checkpoint)."""

    model_config = ConfigDict(extra="allow")

    object: str = "checkpoint.manifest"
    step: int
    spec: dict[str, Any] = Field(..., description="The resolved spec: defaults filled, reward references pinned.")
    dataset: dict[str, Any] = Field(..., description="{hash: sha256 of the rows' canonical JSON, rows, dataset_id}.")
    rewards: list[dict[str, Any]] = Field(..., description="Each component: stored id and version if any, hash.")
    base_model: dict[str, Any] = Field(..., description="{source, revision, init_from, files: {path: sha256}}.")
    seed: int
    packages: dict[str, str | None] = Field(..., description="python, torch, transformers, peft, grpo-service.")
    device: str = Field(..., description="'cpu' or 'cuda:<device name>'.")
    ranks: int = Field(..., description="Processes (devices) the run used.")


class ReproduceFrom(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: uuid.UUID = Field(..., description="A job of yours.")
    step: int = Field(..., ge=0, le=MAX_INT32, description="One of its stored checkpoints.")


class ReproduceRequest(BaseModel):
    """Submit a new job with the spec of a checkpoint's manifest (same seed, data, rewards, model)."""

    model_config = ConfigDict(extra="forbid")

    reproduce: ReproduceFrom
    name: str | None = Field(None, min_length=1, max_length=200, description="Default: the original's name.")


class ResolvedSpec(BaseModel):
    """POST /v1/jobs?dry_run=true: the spec as a job would run it, and no job."""

    object: str = "job.dry_run"
    spec: dict[str, Any] = Field(..., description="Every default filled, reward references pinned to versions.")
    dataset: dict[str, Any] = Field(..., description="{rows, hash} for inline rows; {rows, file_sha256} for uploads.")


def _submission_kind(value: Any) -> str:
    return "reproduce" if isinstance(value, dict) and "reproduce" in value else "spec"


# POST /v1/jobs takes a job spec or {"reproduce": {...}}; the discriminator picks the branch up front, so
# a bad spec's errors name its own fields only.
JobSubmission = Annotated[
    Annotated[JobCreate, Tag("spec")] | Annotated[ReproduceRequest, Tag("reproduce")],
    Discriminator(_submission_kind),
]
