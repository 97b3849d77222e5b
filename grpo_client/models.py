"""Typed views of the service's resources. Unknown fields are kept (extra='allow'): a newer server can
add fields without breaking an older client."""

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class FieldError(Model):
    field: str
    message: str
    type: str = "invalid"


class Problem(Model):
    type: str = "about:blank"
    title: str = ""
    status: int
    detail: str = ""
    code: str = "error"
    errors: list[FieldError] = Field(default_factory=list)
    request_id: str | None = None


class JobProgress(Model):
    step: int
    total_steps: int
    fraction: float
    eta_seconds: float | None = None


class JobError(Model):
    code: str
    message: str
    param: str | None = None


class Job(Model):
    id: uuid.UUID
    name: str
    status: str
    progress: JobProgress
    cancel_requested: bool = False
    error: JobError | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    spec: dict[str, Any] = Field(default_factory=dict)
    latest_metrics: dict[str, float] = Field(default_factory=dict)
    alerts: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class StepMetrics(Model):
    step: int
    values: dict[str, float]


class Event(Model):
    id: int
    created_at: datetime
    step: int | None = None
    level: str
    type: str
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


class Sample(Model):
    step: int
    prompt_index: int
    group_index: int
    prompt: str
    completion: str
    reward: float | None  # None: unscorable (no reward component scored it)
    components: dict[str, float | None] = Field(default_factory=dict)
    advantage: float | None
    num_tokens: int
    truncated: bool


class Checkpoint(Model):
    job_id: uuid.UUID
    step: int
    created_at: datetime
    size_bytes: int
    is_adapter: bool = False
    metrics: dict[str, float] = Field(default_factory=dict)
    eval_score: float | None = None
    files: list[str] = Field(default_factory=list)


class Evaluation(Model):
    id: uuid.UUID
    job_id: uuid.UUID
    step: int
    trigger: str
    status: str
    metrics: dict[str, float] = Field(default_factory=dict)
    error: dict[str, Any] | None = None
    created_at: datetime
    finished_at: datetime | None = None


class Dataset(Model):
    id: uuid.UUID
    name: str
    row_count: int
    size_bytes: int
    field_counts: dict[str, int] = Field(default_factory=dict)
    preview: list[dict[str, Any]] = Field(default_factory=list)
    sha256: str
    created_at: datetime


class RewardVersion(Model):
    reward_id: uuid.UUID
    version: int
    spec: dict[str, Any]
    created_at: datetime


class Reward(Model):
    id: uuid.UUID
    name: str
    description: str = ""
    latest_version: int
    created_at: datetime
    spec: dict[str, Any]
    versions: list[int] = Field(default_factory=list)
    validation: str | None = None  # on create: 'dry_run' (scored on validation_sample) or 'checked' (built only)


class SampleScore(Model):
    total: float | None  # None: unscorable (no component produced a value)
    components: dict[str, float | None] = Field(default_factory=dict)
    errors: dict[str, str] = Field(default_factory=dict)


class RewardTestResult(Model):
    results: list[SampleScore]
    mean_total: float | None  # over the scorable samples; None if none was
    error_count: int


Item = TypeVar("Item")


class Page(Model, Generic[Item]):
    data: list[Item]
    next_cursor: str | None = None
