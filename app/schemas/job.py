"""Job spec and job resources: JobSpec -> JobCreate -> JobPublic -> JobsPublic."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.schemas.grpo import GRPOHyperparameters
from app.schemas.reward import RewardSpec

HUB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        ..., min_length=1, max_length=512,
        description="'tiny-demo' (a small random-init model built on the worker), an absolute path to a "
        "save_pretrained directory under one of the server's allowed model roots, or a Hugging Face hub id "
        "('org/name'). All three load through transformers' from_pretrained.",
        examples=["tiny-demo", "/models/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"],
    )
    revision: str | None = Field(None, max_length=128, description="Hub revision (branch, tag or commit).")


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, JsonValue]] = Field(
        ..., min_length=1,
        description="Training rows. Each needs the prompt field (a string) and whatever fields the rewards read.",
    )
    prompt_field: str = Field("prompt", min_length=1, description="Row field holding the prompt text.")


class CheckpointSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every: int = Field(50, ge=1, description="Save a checkpoint every this many steps, and always at the end.")
    keep_last: int = Field(2, ge=1, le=100, description="Keep this many most recent checkpoints; older ones are deleted.")


class JobSpec(BaseModel):
    """Everything needed to run a training job: the same document the API and `grpo-train` accept."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("grpo-job", min_length=1, max_length=200, description="A label for people; need not be unique.")
    model: ModelSpec
    dataset: DatasetSpec
    rewards: list[RewardSpec] = Field(
        ..., min_length=1, max_length=32, description="Reward components; the total reward is their weighted sum."
    )
    grpo: GRPOHyperparameters = Field(default_factory=GRPOHyperparameters)
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)


class JobCreate(JobSpec):
    pass


class JobError(BaseModel):
    code: str = Field(..., description="Machine-readable reason, e.g. 'model_load_failed', 'worker_lost'.")
    message: str
    param: str | None = Field(None, description="The spec field at fault, when there is one.")


class JobProgress(BaseModel):
    step: int = Field(..., description="Steps completed.")
    total_steps: int
    fraction: float
    eta_seconds: float | None = Field(None, description="Estimated seconds left, from the mean step time so far.")


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    object: str = "job"
    name: str
    status: JobStatus
    progress: JobProgress
    cancel_requested: bool
    error: JobError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    spec: dict[str, Any]
    latest_metrics: dict[str, float] = Field(default_factory=dict, description="Metrics of the last step.")


class JobsPublic(BaseModel):
    data: list[JobPublic]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= to get the next page; null on the last page.")
