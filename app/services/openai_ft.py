"""POST /v1/fine_tuning/jobs -> a native job spec, and native jobs, events, checkpoints -> OpenAI objects.

The mapping (docs/openai-fine-tuning.md#mapping): batch_size -> grpo.prompts_per_step, compute_multiplier ->
grpo.group_size = round(8 x), n_epochs -> grpo.max_steps = ceil(n_epochs * rows / batch_size),
learning_rate_multiplier -> grpo.learning_rate = base x, reasoning_effort -> grpo.max_new_tokens,
validation_file + eval_interval + eval_samples -> the eval section, seed -> grpo.seed, the grader -> rewards.
"""

import math
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.orm import Session

from app.core.errors import FieldError, ProblemError, spec_error
from app.models import Checkpoint, Dataset, Job, JobEvent, OpenAIJobInfo, Tenant
from app.schemas.job import JobCreate, JobStatus
from app.schemas.openai_ft import (
    CheckpointMetrics,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobCreate,
    FineTuningJobEvent,
    JobErrorObject,
)
from app.services import openai_graders
from app.services.openai_files import PROMPT_FIELD, file_id, get_dataset

DEMO_MODEL = "tiny-demo"
# Native sections accepted as extra top-level keys (the SDK passes unknown keys through): merged over
# what the OpenAI fields resolve to, so any native knob can be set from an OpenAI-style request.
NATIVE_EXTENSIONS = ("name", "grpo", "checkpoint", "safeguards", "logging", "budget", "lora")
TOKENS = {  # reasoning_effort -> max_new_tokens; the demo model answers in a few characters
    DEMO_MODEL: {"low": 2, "default": 3, "medium": 4, "high": 8},
    "*": {"low": 256, "default": 1024, "medium": 2048, "high": 4096},
}
TARGET_STEPS = 50  # n_epochs="auto" aims at about this many steps, within 1..10 epochs


def job_id(job: Job) -> str:
    return f"ftjob-{job.id.hex}"


def parse_job_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.removeprefix("ftjob-"))
    except ValueError:
        return None


def after_row(model: Any, row: Any, *, newest: bool) -> ColumnElement[bool]:
    """Rows after `row` in (created_at, id) order: the `after=<id>` cursor of OpenAI's lists."""
    if newest:
        return or_(model.created_at < row.created_at, and_(model.created_at == row.created_at, model.id < row.id))
    return or_(model.created_at > row.created_at, and_(model.created_at == row.created_at, model.id > row.id))


def _stamp(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def _prefixed(exc: ProblemError, prefix: str) -> ProblemError:
    for error in exc.errors:
        error.field = prefix + error.field.removeprefix("grader")
    exc.detail = prefix + exc.detail.removeprefix("grader")
    return exc


def _file(session: Session, tenant: Tenant, value: str, param: str) -> Dataset:
    dataset = get_dataset(session=session, tenant=tenant, file=value)
    if dataset is None:
        raise spec_error(param, f"no such file: {value!r}", type_="not_found")
    return dataset


def resolve_hyperparameters(given: dict[str, Any], *, rows: int, has_validation: bool) -> dict[str, Any]:
    """Every "auto" (or omitted) value replaced by the value the job runs with."""

    def pick(name: str, auto: Any) -> Any:
        value = given.get(name)
        return auto if value in (None, "auto") else value

    batch = pick("batch_size", min(8, rows))
    epochs = pick("n_epochs", min(10, max(1, math.ceil(TARGET_STEPS * batch / rows))))
    resolved = {
        "batch_size": batch,
        "n_epochs": epochs,
        "learning_rate_multiplier": pick("learning_rate_multiplier", 1.0),
        "compute_multiplier": pick("compute_multiplier", 1.0),
        "reasoning_effort": pick("reasoning_effort", "default"),
        "eval_interval": pick("eval_interval", max(1, math.ceil(epochs * rows / batch) // 4)),
        "eval_samples": pick("eval_samples", 1),
    }
    if not has_validation:
        resolved["eval_interval"] = resolved["eval_samples"] = None
    return resolved


def native_spec(
    body: FineTuningJobCreate, hyper: dict[str, Any], grader_spec: dict[str, Any], seed: int, train: Dataset,
    valid: Dataset | None,
) -> dict[str, Any]:  # fmt: skip
    base_lr = 1e-3 if body.model == DEMO_MODEL else 1e-6  # the random-init demo model needs a large rate
    tokens = TOKENS.get(body.model, TOKENS["*"])[hyper["reasoning_effort"]]
    grpo = {
        "prompts_per_step": hyper["batch_size"],
        "group_size": max(2, round(8 * hyper["compute_multiplier"])),
        "max_steps": math.ceil(hyper["n_epochs"] * train.row_count / hyper["batch_size"]),
        "learning_rate": base_lr * hyper["learning_rate_multiplier"],
        "max_new_tokens": tokens,
        "seed": seed,
    }
    extra = body.model_extra or {}
    spec: dict[str, Any] = {
        "name": extra.get("name") or body.suffix or f"rft-{body.model}"[:200],
        "model": {"source": body.model} | ({"lora": extra["lora"]} if extra.get("lora") else {}),
        "dataset": {"dataset_id": str(train.id), "prompt_field": _prompt_field(train)},
        "rewards": [grader_spec],
        "grpo": grpo | (extra.get("grpo") or {}),
    }
    if valid is not None:
        samples = hyper["eval_samples"]
        spec["eval"] = {
            "dataset": {"dataset_id": str(valid.id), "prompt_field": _prompt_field(valid)},
            "every": hyper["eval_interval"],
            "samples_per_prompt": samples,
            "greedy": samples == 1,
        }
    for section in ("checkpoint", "safeguards", "logging", "budget"):
        if extra.get(section) is not None:
            spec[section] = extra[section]
    return spec


def _prompt_field(dataset: Dataset) -> str:
    return PROMPT_FIELD if PROMPT_FIELD in (dataset.field_counts or {}) else "prompt"


def _check_fields(dataset: Dataset, fields: set[str], param: str) -> None:
    for field in sorted(fields):
        present = (dataset.field_counts or {}).get(field, 0)
        if present < dataset.row_count:
            message = f"only {present} of {dataset.row_count} rows have the field {field!r} the grader reads"
            raise spec_error(param, f"{message} ({{{{ item.{field} }}}})")


def build_job(*, session: Session, tenant: Tenant, body: FineTuningJobCreate) -> tuple[JobCreate, dict[str, Any], int]:
    """The native JobCreate, the resolved OpenAI method and the seed; 400s name the OpenAI parameter."""
    unknown = sorted(set(body.model_extra or {}) - set(NATIVE_EXTENSIONS))
    if unknown:
        raise spec_error(unknown[0], f"unknown parameter; native extensions are {', '.join(NATIVE_EXTENSIONS)}")
    for key, value in (body.model_extra or {}).items():
        if not isinstance(value, str if key == "name" else dict):
            raise spec_error(key, "a string" if key == "name" else "an object: the native spec section of that name")
    if body.hyperparameters is not None:
        raise spec_error("hyperparameters", "use method.reinforcement.hyperparameters (the top-level form is for SFT)")
    if body.integrations:
        raise spec_error("integrations", "integrations (e.g. wandb) are not supported; follow events instead")
    if body.method is None or body.method.type != "reinforcement" or body.method.reinforcement is None:
        raise spec_error(
            "method.type", "only reinforcement fine-tuning is offered: method={type: 'reinforcement', ...}"
        )
    train = _file(session, tenant, body.training_file, "training_file")
    valid = _file(session, tenant, body.validation_file, "validation_file") if body.validation_file else None
    method = body.method.reinforcement
    grader = method.grader.model_dump(exclude_none=True)
    try:
        openai_graders.native_reward(grader)
        grader_spec = openai_graders.to_native(grader)
    except ProblemError as exc:
        raise _prefixed(exc, "method.reinforcement.grader") from None
    for dataset, param in ((train, "training_file"), (valid, "validation_file")):
        if dataset is not None:
            _check_fields(dataset, openai_graders.item_fields(grader), param)
    given = method.hyperparameters.model_dump() if method.hyperparameters else {}
    hyper = resolve_hyperparameters(given, rows=train.row_count, has_validation=valid is not None)
    seed = body.seed if body.seed is not None else random.randint(0, 2**31 - 1)
    spec = native_spec(body, hyper, grader_spec, seed, train, valid)
    try:
        job_in = JobCreate.model_validate(spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ProblemError(
            422, "validation_error", f"{field}: {first['msg']} (in the native spec this request maps to)",
            errors=[FieldError(field=field, message=first["msg"], type=first["type"])],
        ) from None  # fmt: skip
    reinforcement: dict[str, Any] = {"grader": grader, "hyperparameters": hyper}
    if method.response_format is not None:
        reinforcement["response_format"] = method.response_format
    resolved = {"type": "reinforcement", "reinforcement": reinforcement}
    return job_in, resolved, seed


def record(*, session: Session, job: Job, body: FineTuningJobCreate, method: dict[str, Any], seed: int) -> None:
    session.add(
        OpenAIJobInfo(
            job_id=job.id, model=body.model, training_file=body.training_file, validation_file=body.validation_file,
            suffix=body.suffix, seed=seed, labels=body.metadata or {}, method=method,
        )
    )  # fmt: skip
    session.commit()


# --- native -> OpenAI ------------------------------------------------------------------------------
def present(job: Job, info: OpenAIJobInfo | None) -> FineTuningJob:
    spec, grpo = job.spec, job.spec.get("grpo", {})
    hyper = (info.method["reinforcement"]["hyperparameters"] if info else None) or {
        "batch_size": grpo.get("prompts_per_step"), "n_epochs": None, "learning_rate_multiplier": None,
    }  # fmt: skip
    eta = None
    if job.status == JobStatus.running and 0 < job.current_step < job.total_steps and job.train_seconds > 0:
        eta = int(
            datetime.now(UTC).timestamp() + job.train_seconds / job.current_step * (job.total_steps - job.current_step)
        )
    dataset_id = spec.get("dataset", {}).get("dataset_id")
    return FineTuningJob(
        id=job_id(job),
        created_at=int(job.created_at.timestamp()),
        error=JobErrorObject.model_validate(job.error) if job.error else None,
        estimated_finish=eta,
        fine_tuned_model=f"{job.id}:ckpt-{job.current_step}" if job.status == JobStatus.succeeded else None,
        finished_at=_stamp(job.finished_at),
        hyperparameters={k: hyper.get(k) for k in ("batch_size", "learning_rate_multiplier", "n_epochs")},
        integrations=[],
        metadata=info.labels if info else {},
        method=info.method if info else None,
        model=info.model if info else spec.get("model", {}).get("source", ""),
        organization_id=f"org-{job.tenant_id.hex}",
        seed=info.seed if info else grpo.get("seed", 0),
        status=job.status.value,
        trained_tokens=int(job.usage_trained_tokens) if job.status == JobStatus.succeeded else None,
        training_file=info.training_file if info else (file_id(uuid.UUID(dataset_id)) if dataset_id else "inline"),
        validation_file=info.validation_file if info else None,
        user_provided_suffix=info.suffix if info else None,
    )


LEVELS = {"warning": "warn", "warn": "warn", "error": "error"}


def present_event(event: JobEvent) -> FineTuningJobEvent:
    """Native 'metrics' (training step) and 'evaluation' events become OpenAI metrics events: the reward
    means under OpenAI-style names (train_reward_mean, valid_reward_mean), then the native metrics."""
    data = dict(event.data or {})
    metric_event = event.type in ("metrics", "evaluation")
    if metric_event:
        values = data.get("values") or data.get("metrics") or {}
        data = {"step": event.step if event.step is not None else data.get("step")}
        if event.type == "metrics":
            data |= {"train_reward_mean": values.get("reward/mean"), "train_reward_std": values.get("reward/std")}
        else:
            data |= {"valid_reward_mean": values.get("eval/reward_mean"), "valid_accuracy": values.get("eval/accuracy")}
        data |= {
            k: v for k, v in values.items() if isinstance(k, str) and k.startswith(("reward/", "eval/", "kl", "loss"))
        }
    return FineTuningJobEvent(
        id=f"ftevent-{event.id}",
        created_at=int(event.created_at.timestamp()),
        level=LEVELS.get(event.level, "info"),  # type: ignore[arg-type]
        message=event.message or event.type,
        type="metrics" if metric_event else "message",
        data=data,
    )


def present_checkpoint(job: Job, checkpoint: Checkpoint) -> FineTuningJobCheckpoint:
    metrics = checkpoint.metrics or {}
    return FineTuningJobCheckpoint(
        id=f"ftckpt-{job.id.hex}-{checkpoint.step}",
        created_at=int(checkpoint.created_at.timestamp()),
        fine_tuned_model_checkpoint=f"{job.id}:ckpt-{checkpoint.step}",
        fine_tuning_job_id=job_id(job),
        step_number=checkpoint.step,
        metrics=CheckpointMetrics(
            step=float(checkpoint.step),
            train_reward_mean=metrics.get("reward/mean"),
            valid_reward_mean=checkpoint.eval_score,
            train_loss=metrics.get("loss"),
        ),
    )
