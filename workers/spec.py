"""Glue between a job spec (app/schemas) and the engine: shared by the Celery task and `grpo-train`.

Free of Celery and the database on purpose: the task and the command line both build the engine's
config and reward function here, so a spec means the same thing on either path.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.schemas.job import DatasetSpec, EvalSpec, JobSpec
from app.schemas.reward_resource import concrete_rewards
from workers.contract import JobFailure
from workers.engine import GRPOConfig, LoraSettings, RewardFn
from workers.engine.model import load_tokenizer, model_path
from workers.rewards import build_reward_fn


class SpecError(JobFailure, ValueError):
    """A job spec that does not validate; `param` is the dotted path of the first offending field."""

    code = "invalid_input"

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
        "eval_success_threshold": eval_spec.success_threshold,
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


RowLoader = Callable[[DatasetSpec, str], list[dict[str, Any]]]


@dataclass
class RunInputs:
    """What a training run is given, built from a spec by run_inputs() (the Celery task and grpo-train)."""

    config: GRPOConfig
    rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]] | None
    rewards: list[Any]  # concrete reward specs (stored references resolved)
    eval_rewards: list[Any] | None  # None: evaluations score with the training rewards
    group_size: int
    count_tokens: LazyTokenCounter  # for length rewards in tokens, in training and evaluation alike

    @contextlib.contextmanager
    def reward_fns(self, judges: Any = None) -> Iterator[tuple[RewardFn, RewardFn | None]]:
        """(training reward function, eval reward function or None), with their sandboxes started.
        `judges` resolves judge rewards' models (workers/judges.py; the service has one, grpo-train none)."""
        with (
            build_reward_fn(
                self.rewards, group_size=self.group_size, count_tokens=self.count_tokens, judges=judges
            ) as reward_fn,
            eval_reward_fn(self.eval_rewards, self.count_tokens, judges=judges) as eval_fn,
        ):
            yield reward_fn, eval_fn


def run_inputs(spec: JobSpec, *, data_dir: Path, load_rows: RowLoader | None = None) -> RunInputs:
    """The one place a spec becomes run inputs. `load_rows(dataset, param)` reads a dataset section: the
    service's loader also reads stored datasets; the default (grpo-train) takes inline rows only."""
    load = load_rows or inline_rows
    config = engine_config_from_spec(spec, data_dir=data_dir)
    return RunInputs(
        config=config,
        rows=load(spec.dataset, "dataset"),
        eval_rows=load(spec.eval.dataset, "eval.dataset") if spec.eval else None,
        rewards=concrete_rewards(spec.rewards),
        eval_rewards=concrete_rewards(spec.eval.rewards) if spec.eval and spec.eval.rewards else None,
        group_size=spec.grpo.group_size,
        count_tokens=token_counter(config),
    )


def eval_reward_fn(
    rewards: list[Any] | None, count_tokens: Callable[[str], int], judges: Any = None
) -> contextlib.AbstractContextManager[RewardFn | None]:
    """Held-out graders (None: none given), for scheduled evaluations (run_inputs) and on-demand ones alike."""
    if rewards is None:
        return contextlib.nullcontext()
    return build_reward_fn(rewards, count_tokens=count_tokens, judges=judges)


def inline_rows(dataset: DatasetSpec, param: str) -> list[dict[str, Any]]:
    """A dataset section's inline rows; grpo-train has no storage to read a dataset_id from."""
    if dataset.rows is None:
        raise SpecError(
            f"grpo-train needs inline {param} rows (dataset_id refers to the service's storage)",
            param=f"{param}.dataset_id",
        )
    return [dict(row) for row in dataset.rows]


def reward_fn_from_spec(spec: JobSpec, count_tokens: Callable[[str], int] | None = None) -> RewardFn:
    """The training reward alone (benchmarks and engine tests); runs use run_inputs(...).reward_fns()."""
    return build_reward_fn(concrete_rewards(spec.rewards), group_size=spec.grpo.group_size, count_tokens=count_tokens)


def training_rows(spec: JobSpec) -> list[dict[str, Any]]:
    return inline_rows(spec.dataset, "dataset")
