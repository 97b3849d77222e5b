"""Glue between a job spec (app/schemas) and the engine: shared by the Celery task and `grpo-train`.

Free of Celery and the database on purpose: the task and the command line both build the engine's
config and reward function here, so a spec means the same thing on either path.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.schemas.job import EvalSpec, JobSpec
from app.schemas.reward_resource import concrete_rewards
from workers.engine import GRPOConfig, LoraSettings, RewardFn
from workers.engine.model import load_tokenizer, model_path
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
        else LoraSettings(r=lora.r, alpha=lora.alpha, dropout=lora.dropout, target_modules=tuple(lora.target_modules)),
        prompt_field=spec.dataset.prompt_field,
        checkpoint_every=spec.checkpoint.every,
        keep_last=spec.checkpoint.keep_last,
        log_samples_per_step=spec.logging.samples_per_step,
        device=spec.resources.accelerator or "auto",  # each rank of a multi-device job takes its own index
        **(eval_overrides(spec.eval) | {"eval_every": spec.eval.every} if spec.eval else {}),
    )


def eval_overrides(eval_spec: EvalSpec) -> dict[str, Any]:
    """The engine's eval_* knobs for an eval section (scheduled in training, or on demand)."""
    return {
        "eval_samples_per_prompt": eval_spec.samples_per_prompt,
        "eval_greedy": eval_spec.greedy,
        "eval_max_new_tokens": eval_spec.max_new_tokens,
        "eval_max_prompts": eval_spec.max_prompts,
        "eval_correct_threshold": eval_spec.success_threshold,
    }


class LazyTokenCounter:
    """Counts a completion's tokens (length rewards with unit='tokens') with a tokenizer loaded on first use,
    so a job without such a reward never loads one."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load, self._tokenizer, self._lock = load, None, threading.Lock()

    def __call__(self, text: str) -> int:
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = self._load()
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])  # type: ignore[misc]


def token_counter(config: GRPOConfig) -> LazyTokenCounter:
    """The run's tokenizer as a counter; reads config.model_source when first used (after init_from set it)."""
    return LazyTokenCounter(lambda: load_tokenizer(model_path(config), config.model_revision))


def reward_fn_from_spec(spec: JobSpec, count_tokens: Callable[[str], int] | None = None) -> RewardFn:
    return build_reward_fn(
        concrete_rewards(spec.rewards), group_size=spec.grpo.group_size, count_tokens=count_tokens
    )


def training_rows(spec: JobSpec) -> list[dict[str, Any]]:
    if spec.dataset.rows is None:
        raise SpecError(
            "grpo-train needs inline dataset rows (dataset_id refers to the service's storage)",
            param="dataset.dataset_id",
        )
    return [dict(row) for row in spec.dataset.rows]


def eval_inputs(spec: JobSpec) -> tuple[list[dict[str, Any]] | None, RewardFn | None]:
    """Held-out rows and graders of a spec's eval section (inline rows only, as for training_rows)."""
    if spec.eval is None:
        return None, None
    if spec.eval.dataset.rows is None:
        raise SpecError("grpo-train needs inline eval rows", param="eval.dataset.dataset_id")
    reward_fn = build_reward_fn(concrete_rewards(spec.eval.rewards)) if spec.eval.rewards else None
    return [dict(row) for row in spec.eval.dataset.rows], reward_fn
