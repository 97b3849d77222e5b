"""OpenAI's files and fine-tuning wire format (openai SDK 3.x FileObject, FineTuningJob, ...)."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.openai_graders import Grader

AUTO = Literal["auto"]
PositiveInt = Annotated[int, Field(ge=1, le=1_000_000)]
PositiveFloat = Annotated[float, Field(gt=0.0, le=1000.0)]


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: Literal["fine-tune"] = "fine-tune"
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class ReinforcementHyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: AUTO | PositiveInt | None = Field(None, description="Prompts per step (native grpo.prompts_per_step).")
    compute_multiplier: AUTO | PositiveFloat | None = Field(
        None, description="Scales the samples per prompt: grpo.group_size = round(8 * compute_multiplier), >= 2."
    )
    eval_interval: AUTO | PositiveInt | None = Field(None, description="Steps between evaluations (native eval.every).")
    eval_samples: AUTO | PositiveInt | None = Field(
        None, description="Samples per held-out prompt (eval.samples_per_prompt)."
    )
    learning_rate_multiplier: AUTO | PositiveFloat | None = Field(
        None, description="Times the model's base learning rate."
    )
    n_epochs: AUTO | PositiveInt | None = Field(
        None, description="Passes over the training file (sets grpo.max_steps)."
    )
    reasoning_effort: Literal["default", "low", "medium", "high"] | None = Field(
        None, description="Completion length budget (native grpo.max_new_tokens)."
    )


class ReinforcementMethod(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grader: Grader
    hyperparameters: ReinforcementHyperparameters | None = None
    response_format: dict[str, Any] | None = Field(
        None, description="Accepted; completions are parsed as JSON into sample.output_json whenever they are JSON."
    )


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised", "dpo", "reinforcement"]
    reinforcement: ReinforcementMethod | None = None
    supervised: dict[str, Any] | None = None
    dpo: dict[str, Any] | None = None


class FineTuningJobCreate(BaseModel):
    """POST /v1/fine_tuning/jobs. Keys beyond OpenAI's are native extensions (NATIVE_EXTENSIONS)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(..., min_length=1, max_length=512)
    training_file: str = Field(..., min_length=1, max_length=64)
    validation_file: str | None = Field(None, max_length=64)
    method: Method | None = None
    hyperparameters: dict[str, Any] | None = Field(None, description="Deprecated top-level form (supervised).")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    suffix: str | None = Field(None, min_length=1, max_length=64)
    metadata: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] | None = Field(
        None, max_length=16, description="Up to 16 pairs (keys <= 64 chars, values <= 512), as OpenAI's."
    )
    integrations: list[dict[str, Any]] | None = None


class JobErrorObject(BaseModel):
    code: str
    message: str
    param: str | None = None


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobErrorObject | None = None
    estimated_finish: int | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    hyperparameters: dict[str, Any]
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    method: dict[str, Any] | None = None
    model: str
    organization_id: str
    result_files: list[str] = Field(default_factory=list)
    seed: int
    status: Literal["validating_files", "queued", "running", "pausing", "paused", "succeeded", "failed", "cancelled"]
    trained_tokens: int | None = None
    training_file: str
    validation_file: str | None = None
    user_provided_suffix: str | None = None


class FineTuningJobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"]
    data: dict[str, Any] | None = None


class CheckpointMetrics(BaseModel):
    model_config = ConfigDict(extra="allow")

    step: float
    train_reward_mean: float | None = None
    valid_reward_mean: float | None = None
    train_loss: float | None = None


class FineTuningJobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int


class ListPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[Any]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None
