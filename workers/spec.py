"""Glue between a job spec (app/schemas) and the engine: shared by the Celery task and `grpo-train`.

Free of Celery and the database on purpose: the task and the command line both build the engine's
config and reward function here, so a spec means the same thing on either path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.schemas.job import JobSpec
from workers.engine import GRPOConfig, LoraSettings, RewardFn
from workers.rewards import build_reward_fn


class SpecError(ValueError):
    """A job spec that does not validate; `param` is the dotted path of the first offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def parse_spec(data: dict[str, Any]) -> JobSpec:
    """Validate a job spec document, raising SpecError naming the first bad field."""
    try:
        return JobSpec.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(part) for part in first["loc"])
        raise SpecError(f"{param}: {first['msg']}", param=param) from error


def load_spec_file(path: Path) -> JobSpec:
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise SpecError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise SpecError(f"{path} must hold a JSON object (the job spec)")
    return parse_spec(data)


def engine_config_from_spec(spec: JobSpec, *, data_dir: Path) -> GRPOConfig:
    """The engine config of a job. `data_dir` holds worker-side caches (the built tiny-demo model)."""
    lora = getattr(spec.model, "lora", None)
    return GRPOConfig(
        **spec.grpo.model_dump(),
        model_source=spec.model.source,
        model_revision=spec.model.revision,
        model_cache_dir=Path(data_dir) / "models",
        lora=None
        if lora is None
        else LoraSettings(
            r=lora.r, alpha=lora.alpha, dropout=lora.dropout, target_modules=tuple(lora.target_modules)
        ),
        prompt_field=spec.dataset.prompt_field,
        checkpoint_every=spec.checkpoint.every,
        keep_last=spec.checkpoint.keep_last,
    )


def reward_fn_from_spec(spec: JobSpec) -> RewardFn:
    return build_reward_fn(spec.rewards)


def training_rows(spec: JobSpec) -> list[dict[str, Any]]:
    return [dict(row) for row in spec.dataset.rows]
