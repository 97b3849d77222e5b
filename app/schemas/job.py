"""Job spec and job resources: JobSpec -> JobCreate -> JobPublic -> JobsPublic."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.core.sanitize import SafeText
from app.schemas.budget import Budget, JobUsage
from app.schemas.errors import JOB_ERROR_CODES_DOC
from app.schemas.grpo import GRPOHyperparameters
from app.schemas.job_error import JobErrorCodeField
from app.schemas.page import ListPublic
from app.schemas.resources import ResourcesSpec, check_fits_spec
from app.schemas.reward import SafeguardSpec
from app.schemas.reward_resource import JobReward
from app.schemas.storable import MAX_INT32, StorableBody

HUB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    # A pause was asked for: the worker finishes the current step, checkpoints and lets go of the job.
    pausing = "pausing"
    # Holds no worker; POST /jobs/{id}/resume queues it again to continue from its latest checkpoint.
    paused = "paused"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class LoraSpec(BaseModel):
    """LoRA adapters through peft: only the adapters train and only they are checkpointed."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, le=1024, description="Adapter rank: the capacity of the update; 8-64 is usual.")
    alpha: int = Field(
        32, ge=1, le=4096, description="Scaling numerator: the update is scaled by alpha / r; 2 * r is a common choice."
    )
    dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout on the adapter input. 0 (default) keeps the policy that samples and the one that is "
        "trained identical, which the importance ratio assumes.",
    )
    target_modules: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1,
        max_length=64,
        description="Names of the linear layers that get adapters (peft's target_modules); the default covers the "
        "attention and MLP projections of Llama / Qwen-style models.",
    )


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        ...,
        min_length=1,
        max_length=512,
        description="'tiny-demo' (a small random-init model built on the worker), an absolute path to a "
        "save_pretrained directory under one of the server's allowed model roots, or a Hugging Face hub id "
        "('org/name'). All three load through transformers' from_pretrained.",
        examples=["tiny-demo", "/models/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"],
    )
    revision: str | None = Field(None, max_length=128, description="Hub revision (branch, tag or commit).")
    lora: LoraSpec | None = Field(
        None,
        description="Train LoRA adapters (peft) instead of all weights. Checkpoints then hold only the adapters; "
        "POST .../checkpoints/{step}/merge produces a merged, plain model to download. With beta > 0 the "
        "reference is the base model (adapters disabled), so no second copy of the weights is loaded. "
        "None (default) trains every weight.",
    )


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, JsonValue]] | None = Field(
        None,
        min_length=1,
        description="Inline rows, for small jobs. Each needs the prompt field (a string) and whatever fields the "
        "rewards read. Give either rows or dataset_id.",
    )
    dataset_id: uuid.UUID | None = Field(None, description="An uploaded dataset (POST /v1/datasets).")
    prompt_field: str = Field("prompt", min_length=1, description="Row field holding the prompt text.")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> "DatasetSpec":
        if (self.rows is None) == (self.dataset_id is None):
            raise PydanticCustomError("dataset_source", "give exactly one of 'rows' or 'dataset_id'")
        return self


class CheckpointSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every: int = Field(50, ge=1, description="Save a checkpoint every this many steps, and always at the end.")
    keep_last: int = Field(2, ge=1, le=100, description="Keep this many most recent checkpoints in storage.")
    keep_best: int = Field(
        1,
        ge=0,
        le=100,
        description="Also keep this many checkpoints with the best evaluation score (needs an eval section).",
    )


class EvalSpec(BaseModel):
    """Held-out evaluation, run on the policy every `every` steps and at the end."""

    model_config = ConfigDict(extra="forbid")

    dataset: DatasetSpec = Field(..., description="Held-out rows, never trained on.")
    rewards: list[JobReward] | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="Graders for evaluation; default: the training rewards. Use a stricter, independent grader "
        "here (e.g. math equivalence) to catch reward hacking of a cheap training reward.",
    )
    every: int = Field(50, ge=1, description="Evaluate every this many steps (and at step 0 and the end).")
    samples_per_prompt: int = Field(
        1, ge=1, le=256, description="Completions per held-out prompt; pass@k needs k <= this."
    )
    greedy: bool = Field(
        True,
        description="Greedy decoding (samples_per_prompt must be 1); false samples with the training "
        "sampling settings (temperature, top_p, top_k).",
    )
    max_new_tokens: int | None = Field(None, ge=1, description="Default: the training max_new_tokens.")
    max_prompts: int | None = Field(None, ge=1, description="Evaluate on at most this many rows (the first ones).")
    success_threshold: float = Field(
        1.0, description="A completion counts as correct when its total eval reward is >= this (for accuracy, pass@k)."
    )

    @model_validator(mode="after")
    def _greedy_means_one_sample(self) -> "EvalSpec":
        if self.greedy and self.samples_per_prompt > 1:
            raise PydanticCustomError(
                "greedy_samples",
                "greedy decoding gives the same completion every time: set greedy=false to draw "
                "several samples per prompt",
            )
        return self


class LoggingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samples_per_step: int = Field(
        4, ge=0, le=1024, description="Completions stored per step for GET /jobs/{id}/samples (0 stores none)."
    )


class InitFrom(BaseModel):
    """Start from the weights of another job's checkpoint (fine-tune further)."""

    model_config = ConfigDict(extra="forbid")

    job_id: uuid.UUID
    step: int | None = Field(
        None, ge=0, le=MAX_INT32, description="Checkpoint step; default the job's latest checkpoint."
    )


def _sections_with_field(name: str) -> list[str]:
    """The spec's sections (grpo, checkpoint, ...) that have a field called `name`."""
    sections = []
    for section, info in JobSpec.model_fields.items():
        for model in (info.annotation, *getattr(info.annotation, "__args__", ())):
            if isinstance(model, type) and issubclass(model, BaseModel) and name in model.model_fields:
                sections.append(section)
                break
    return sections


class JobSpec(StorableBody):
    """Everything needed to run a training job: the same document the API and `grpo-train` accept."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("grpo-job", min_length=1, max_length=200, description="A label for people; need not be unique.")
    model: ModelSpec = Field(..., description="The base causal language model to train.")
    dataset: DatasetSpec = Field(..., description="Training prompts (and the fields the rewards read).")
    rewards: list[JobReward] = Field(
        ...,
        min_length=1,
        max_length=32,
        description="Reward components, inline or references to stored definitions ({'type': 'ref', "
        "'reward_id': ...}); the total reward is their weighted sum.",
    )
    grpo: GRPOHyperparameters = Field(default_factory=GRPOHyperparameters, description="The algorithm's knobs.")
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec, description="Checkpoint cadence and retention.")
    eval: EvalSpec | None = Field(None, description="Held-out evaluation; none by default.")
    safeguards: SafeguardSpec = Field(
        default_factory=SafeguardSpec,
        description="Reward-hacking detectors over every step's metrics; alerts become job events and, "
        "with on_alert='stop', end the job (with 'pause', pause it).",
    )
    logging: LoggingSpec = Field(default_factory=LoggingSpec, description="What is recorded besides metrics.")
    init_from: InitFrom | None = Field(
        None, description="Start from another job's checkpoint instead of model.source's weights (same tenant)."
    )
    budget: Budget = Field(
        default_factory=Budget,
        description="Limits on time, device-hours, tokens and reward calls; crossing one pauses the job.",
    )
    resources: ResourcesSpec = Field(
        default_factory=ResourcesSpec,
        description="Accelerator kind, number of devices and parallel strategy; default one device, any kind.",
    )

    @field_validator("resources")
    @classmethod
    def _resources_fit_the_step(cls, value: ResourcesSpec, info: ValidationInfo) -> ResourcesSpec:
        grpo = info.data.get("grpo")
        if grpo is not None:
            check_fits_spec(value, grpo)
        return value

    @field_validator("name")
    @classmethod
    def _name_is_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank_name", "must contain a character other than whitespace")
        return value

    @model_validator(mode="before")
    @classmethod
    def _section_fields_stay_in_their_section(cls, data: Any) -> Any:
        """`learning_rate` at the top level is a common slip: say where it goes, not just 'extra input'."""
        if not isinstance(data, dict):
            return data
        misplaced = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "misplaced_field",
                    '{field} belongs in {where}: send {{"{section}": {{"{field}": ...}}}}',
                    {"field": key, "where": " or ".join(sections), "section": sections[0]},
                ),
                loc=(key,),
                input=data[key],
            )
            for key in data
            if key not in cls.model_fields and (sections := _sections_with_field(str(key)))
        ]
        if misplaced:
            raise ValidationError.from_exception_data(cls.__name__, misplaced)
        return data

    @field_validator("grpo")
    @classmethod
    def _lora_reference_is_not_synced(cls, value: GRPOHyperparameters, info: ValidationInfo) -> GRPOHyperparameters:
        model = info.data.get("model")
        if model is not None and model.lora is not None and value.ref_model_sync_steps is not None:
            raise ValueError(
                "ref_model_sync_steps cannot be used with model.lora: the reference is the base model with the "
                "adapters disabled, not a copy that could be synced; remove one of the two"
            )
        return value


class JobCreate(JobSpec):
    pass


class JobError(BaseModel):
    code: JobErrorCodeField = Field(
        ..., description="Machine-readable reason, one of a closed list: " + JOB_ERROR_CODES_DOC
    )
    message: SafeText
    param: str | None = Field(None, description="The spec field at fault, when there is one.")


class JobProgress(BaseModel):
    step: int = Field(..., description="Steps completed.")
    total_steps: int
    fraction: float
    eta_seconds: float | None = Field(None, description="Estimated seconds left, from the mean step time so far.")
    tokens_per_s: float | None = Field(
        None, description="Throughput of the last step: completion tokens generated per second of the whole step."
    )


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
    alerts: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Reward-hacking alerts raised so far ({code, message, step}); also sent as 'alert' events.",
    )
    usage: JobUsage = Field(default_factory=JobUsage, description="What the job has consumed so far (budgets).")


class JobsPublic(ListPublic[JobPublic]):
    pass
