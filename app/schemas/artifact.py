"""Checkpoints, evaluations and logged samples as the API shows them."""

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.page import ListPublic
from app.schemas.reward_resource import JobReward
from app.schemas.status import EvaluationStatus, EvaluationTrigger, MergeStatus
from app.schemas.storable import MAX_INT32, StorableBody


class CheckpointPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: Literal["checkpoint"] = "checkpoint"
    job_id: uuid.UUID
    step: int
    created_at: datetime
    size_bytes: int = Field(
        ...,
        description="Bytes stored for this checkpoint: the model and tokenizer plus the optimiser, scheduler and "
        "RNG state (the ?variant=full download) and a small completeness marker. The default download "
        "holds the model files only: model_bytes.",
    )
    model_bytes: int | None = Field(
        None,
        description="Bytes of the files in the default (model) download, before tar framing. Given by GET "
        ".../checkpoints/{step}; null in lists, which do not list each checkpoint's files in storage.",
    )
    is_adapter: bool = Field(..., description="LoRA adapter only (load with peft on top of the base model).")
    metrics: dict[str, float] = Field(..., description="Training metrics of the step the checkpoint was taken at.")
    eval_score: float | None = Field(None, description="Held-out accuracy at this step, when evaluated.")
    files: list[str] = Field(
        default_factory=list,
        description="Files in the model download. Given by GET .../checkpoints/{step}; empty in lists.",
    )
    merge_status: MergeStatus | None = Field(
        None,
        description="LoRA checkpoints: state of the merged download (POST .../merge); null until one is asked for.",
    )


class CheckpointsPublic(ListPublic[CheckpointPublic]):
    pass


class EvaluationCreate(StorableBody):
    """Evaluate a stored checkpoint on demand. Defaults come from the job's eval section."""

    model_config = ConfigDict(extra="forbid")

    step: int | None = Field(None, ge=0, le=MAX_INT32, description="Checkpoint step; default the latest checkpoint.")
    rows: list[dict[str, Any]] | None = Field(None, min_length=1, description="Held-out rows; default the job's.")
    dataset_id: uuid.UUID | None = None
    rewards: list[JobReward] | None = Field(None, min_length=1, description="Graders; default the job's eval ones.")
    samples_per_prompt: int | None = Field(None, ge=1, le=256)
    greedy: bool | None = None
    max_new_tokens: int | None = Field(None, ge=1)
    max_prompts: int | None = Field(None, ge=1)
    success_threshold: float | None = None


class EvaluationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: Literal["evaluation"] = "evaluation"
    id: uuid.UUID
    job_id: uuid.UUID
    step: int
    trigger: EvaluationTrigger
    status: EvaluationStatus
    metrics: dict[str, float] = Field(
        ..., description="eval/reward_mean, eval/accuracy, eval/pass@k, eval/<component>/mean, ..."
    )
    error: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None


class EvaluationsPublic(ListPublic[EvaluationPublic]):
    pass


class SamplePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    step: int
    prompt_index: int
    group_index: int
    prompt: str
    completion: str
    reward: float | None = Field(..., description="The total reward; null: unscorable (no component scored it).")
    components: dict[str, float | None]
    advantage: float | None
    num_tokens: int
    truncated: bool


class SamplesPublic(ListPublic[SamplePublic]):
    pass
