"""Checks of a job spec that need the server's settings (limits, allowed model roots).

Pydantic already checked shapes and ranges; these checks raise the same 422 problem, naming the field.
"""

import re
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import FieldError, ProblemError, spec_error
from app.models import Checkpoint, Dataset, Job
from app.schemas.job import HUB_ID_PATTERN, DatasetSpec, EvalSpec, JobSpec
from app.schemas.reward_resource import concrete_rewards, reference_fields
from app.services.dataset_rows import prompt_issue_line, prompt_problem
from app.services.routing import check_routable

TINY_DEMO = "tiny-demo"


def check_model_source(source: str, revision: str | None, settings: Settings) -> None:
    if source == TINY_DEMO:
        return
    if source.startswith(("/", "./", "../", "~")):
        path = Path(source).expanduser()
        if not path.is_absolute():
            raise spec_error("model.source", "local model paths must be absolute")
        resolved = path.resolve()
        roots = [root.resolve() for root in settings.model_roots]
        if not any(resolved.is_relative_to(root) for root in roots):
            allowed = ", ".join(map(str, roots)) or "none are configured (GRPO_MODEL_ROOTS)"
            raise spec_error("model.source", f"local paths must lie under an allowed model root; allowed: {allowed}")
        if not resolved.is_dir():
            raise spec_error("model.source", f"no directory {str(resolved)!r} on the API host")
        if not (resolved / "config.json").is_file():
            raise spec_error("model.source", "no save_pretrained model there (config.json missing)")
        return
    if not re.fullmatch(HUB_ID_PATTERN, source) or ".." in source:
        raise spec_error(
            "model.source",
            f"unknown model source {source!r}: use 'tiny-demo', an absolute local path, "
            "or a Hugging Face hub id such as 'Qwen/Qwen2.5-0.5B-Instruct'",
        )
    if revision is not None and not re.fullmatch(r"[A-Za-z0-9._/-]+", revision):
        raise spec_error("model.revision", "not a valid revision name")


def _enforce(limits: list[tuple[str, int, int]]) -> None:
    for field, value, limit in limits:
        if value > limit:
            raise spec_error(field, f"{value} exceeds this server's limit of {limit}", type_="limit_exceeded")


def eval_limits(spec: EvalSpec, settings: Settings, prefix: str) -> list[tuple[str, int, int]]:
    """An evaluation generates like training does: the same operator limits apply to it."""
    return [
        (f"{prefix}max_new_tokens", spec.max_new_tokens or 0, settings.max_new_tokens_limit),
        (f"{prefix}samples_per_prompt", spec.samples_per_prompt, settings.max_group_size),
        (f"{prefix}dataset.rows", len(spec.dataset.rows or []), settings.max_dataset_rows),
    ]


def check_limits(spec: JobSpec, settings: Settings) -> None:
    limits = [
        ("grpo.max_steps", spec.grpo.max_steps, settings.max_steps_limit),
        ("grpo.group_size", spec.grpo.group_size, settings.max_group_size),
        ("grpo.max_new_tokens", spec.grpo.max_new_tokens, settings.max_new_tokens_limit),
        ("dataset.rows", len(spec.dataset.rows or []), settings.max_dataset_rows),
    ]
    if spec.eval is not None:
        limits += eval_limits(spec.eval, settings, "eval.")
    _enforce(limits)


def check_evaluation_limits(spec: EvalSpec, settings: Settings) -> None:
    """For on-demand evaluation requests, whose fields sit at the top level of the request body."""
    _enforce([(field.replace("dataset.", ""), value, limit) for field, value, limit in eval_limits(spec, settings, "")])


def _reward_fields(rewards: list[Any]) -> list[str]:
    return sorted(set().union(*(reference_fields(reward) for reward in concrete_rewards(rewards))))


def check_rows(dataset: DatasetSpec, rewards: list[Any], param: str) -> None:
    if dataset.rows is None:
        return
    for index, row in enumerate(dataset.rows):
        problem = prompt_problem(row, dataset.prompt_field)
        if problem:
            raise spec_error(f"{param}.rows[{index}].{dataset.prompt_field}", problem)
        for field in _reward_fields(rewards):
            if field not in row:
                raise spec_error(f"{param}.rows[{index}].{field}", "missing: a reward reads this field")


def check_uploaded_dataset(
    dataset: DatasetSpec, rewards: list[Any], param: str, *, session: Session, tenant_id: uuid.UUID
) -> None:
    if dataset.dataset_id is None:
        return
    row = session.scalar(select(Dataset).where(Dataset.id == dataset.dataset_id, Dataset.tenant_id == tenant_id))
    if row is None:
        raise spec_error(f"{param}.dataset_id", "no such dataset")
    bad_prompt = prompt_issue_line(row.field_issues or {}, dataset.prompt_field)
    if bad_prompt is not None:
        line, reason = bad_prompt
        raise spec_error(
            f"{param}.dataset_id",
            f"dataset {row.id} line {line} {reason} {dataset.prompt_field!r}, the job's prompt field: every row "
            "needs a non-empty string there",
        )
    for field in [dataset.prompt_field, *_reward_fields(rewards)]:
        present = row.field_counts.get(field, 0)
        if present < row.row_count:
            line = (row.field_issues or {}).get("missing", {}).get(field)
            first = f"; line {line} is the first without it" if line is not None else ""
            raise spec_error(
                f"{param}.dataset_id",
                f"dataset {row.id}: only {present} of {row.row_count} rows have the field {field!r}{first}",
            )


def check_init_from(spec: JobSpec, *, session: Session, tenant_id: uuid.UUID) -> None:
    if spec.init_from is None:
        return
    source = session.scalar(select(Job).where(Job.id == spec.init_from.job_id, Job.tenant_id == tenant_id))
    if source is None:
        raise spec_error("init_from.job_id", "no such job")
    query = select(Checkpoint.step).where(Checkpoint.job_id == source.id, Checkpoint.deleted_at.is_(None))
    if spec.init_from.step is not None:
        query = query.where(Checkpoint.step == spec.init_from.step)
    if session.scalar(query.limit(1)) is None:
        raise spec_error(
            "init_from.step" if spec.init_from.step is not None else "init_from.job_id", "no stored checkpoint there"
        )


def check_reward_weights(rewards: list[Any], param: str) -> None:
    """All weights 0: the total is 0 for every completion, so every advantage is 0 and nothing is learned."""
    weights = [spec.weight for spec in concrete_rewards(rewards)]
    if weights and all(weight == 0 for weight in weights):
        fields = [f"{param}[{index}].weight" for index in range(len(weights))]
        message = "every reward weight is 0: the total reward would always be 0 and nothing could be learned"
        raise ProblemError(
            422,
            "validation_error",
            f"{', '.join(fields)}: {message}; give at least one reward a non-zero weight",
            title="Invalid request",
            errors=[FieldError(field=field, message=message, type="all_zero") for field in fields],
        )


def check_spec(spec: JobSpec, settings: Settings, *, session: Session, tenant_id: uuid.UUID) -> None:
    check_model_source(spec.model.source, spec.model.revision, settings)
    check_limits(spec, settings)
    check_reward_weights(spec.rewards, "rewards")
    if spec.eval is not None and spec.eval.rewards:
        check_reward_weights(spec.eval.rewards, "eval.rewards")
    datasets = [(spec.dataset, spec.rewards, "dataset")]
    if spec.eval is not None:
        datasets.append((spec.eval.dataset, spec.eval.rewards or spec.rewards, "eval.dataset"))
    for dataset, rewards, param in datasets:
        check_rows(dataset, rewards, param)
        check_uploaded_dataset(dataset, rewards, param, session=session, tenant_id=tenant_id)
    check_init_from(spec, session=session, tenant_id=tenant_id)
    check_routable(spec.resources, settings)
