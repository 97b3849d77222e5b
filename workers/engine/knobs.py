"""The admissible values of every GRPOConfig knob, as data: closed choices, numeric ranges and the
cross-field rules, checked in one place (GRPOConfig.__post_init__ calls `check`).

The hyperparameters' ranges and choices are those of the API schema (app/schemas/grpo.py, which
documents each knob with its default and reason). The engine imports nothing from `app`, so the two are
kept equal by a test rather than by an import: tests/engine/test_knob_drift.py compares names, types,
defaults, choices and ranges field by field, and runs every cross-field rule on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHOICES: dict[str, tuple[str, ...]] = {
    "scale_rewards": ("group", "batch", "none"),
    "advantage_baseline": ("mean", "leave_one_out"),
    "loss_type": ("grpo", "bnpo", "dr_grpo", "dapo"),
    "importance_sampling_level": ("token", "sequence"),
    "sampling_correction": ("off", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask"),
    "lr_scheduler": ("constant", "linear", "cosine"),
    "precision": ("auto", "fp32", "bf16"),
}


@dataclass(frozen=True)
class Limit:
    """Bounds of a numeric knob (pydantic's ge / gt / le / lt); None is allowed where the field's type is
    optional (it then means 'disabled'), and `why` is appended to the error."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    why: str = ""

    def admits(self, value: float) -> bool:
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )

    def describe(self) -> str:
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else None
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else None
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f">= {self.ge:g}" if self.ge is not None else f"> {self.gt:g}"
        return f"<= {self.le:g}" if self.le is not None else f"< {self.lt:g}"


# Hyperparameters (the API's GRPOHyperparameters), in its order, then the engine-side knobs.
LIMITS: dict[str, Limit] = {
    "group_size": Limit(ge=2, le=1024, why="advantages compare completions within a group"),
    "prompts_per_step": Limit(ge=1, le=4096),
    "max_steps": Limit(ge=1),
    "micro_batch_size": Limit(ge=1),
    "num_iterations": Limit(ge=1, le=64),
    "steps_per_generation": Limit(ge=1, le=64),
    "max_new_tokens": Limit(ge=1),
    "max_prompt_tokens": Limit(ge=1),
    "temperature": Limit(gt=0, le=10, why="use eval_greedy for greedy decoding"),
    "top_p": Limit(gt=0, le=1, why="1.0 disables nucleus sampling"),
    "top_k": Limit(ge=0, why="0 disables it"),
    "repetition_penalty": Limit(gt=0, le=10, why="1.0 disables it"),
    "min_p": Limit(ge=0, le=1, why="0.0 disables it"),
    "reward_std_epsilon": Limit(gt=0, why="it keeps a tied group's advantage 0, not NaN"),
    "epsilon": Limit(ge=0, le=10),
    "epsilon_high": Limit(ge=0, le=10),
    "delta": Limit(gt=1, why="it caps the ratio"),
    "sampling_correction_cap": Limit(ge=1, le=1000, why="1 is the on-policy weight"),
    "beta": Limit(ge=0, why="0 disables the KL term and the reference model"),
    "ref_model_sync_steps": Limit(ge=1),
    "ref_model_mixup_alpha": Limit(ge=0, le=1),
    "max_resample_rounds": Limit(ge=0, le=64),
    "learning_rate": Limit(gt=0, le=1),
    "warmup_steps": Limit(ge=0),
    "weight_decay": Limit(ge=0, le=1),
    "adam_beta1": Limit(ge=0, lt=1),
    "adam_beta2": Limit(ge=0, lt=1),
    "adam_epsilon": Limit(gt=0),
    "max_grad_norm": Limit(gt=0),
    "seed": Limit(ge=0, le=2**32 - 1),
    "num_threads": Limit(ge=1, le=512),
    # engine-side (set from other sections of the job spec, which check them there)
    "checkpoint_every": Limit(ge=1),
    "keep_last": Limit(ge=1),
    "eval_every": Limit(ge=1),
    "eval_samples_per_prompt": Limit(ge=1),
    "eval_max_new_tokens": Limit(ge=1),
    "eval_max_prompts": Limit(ge=1),
    "log_samples_per_step": Limit(ge=0),
}

STOP_STRINGS_MAX, STOP_STRING_MAX_CHARS = 16, 256  # the API's limits on `stop`


def field_errors(config: Any) -> list[tuple[str, str]]:
    """(knob, message) for every value outside its choices or range."""
    errors = []
    for name, allowed in CHOICES.items():
        if getattr(config, name) not in allowed:
            errors.append((name, f"{name}={getattr(config, name)!r}: choose one of {allowed}"))
    for name, limit in LIMITS.items():
        value = getattr(config, name)
        if value is not None and not limit.admits(value):
            none = ", or None to disable it" if name in OPTIONAL else ""
            why = f" ({limit.why})" if limit.why else ""
            errors.append((name, f"{name} must be {limit.describe()}{none}{why}"))
    stop = list(config.stop)
    if len(stop) > STOP_STRINGS_MAX or not all(0 < len(s) <= STOP_STRING_MAX_CHARS for s in stop):
        errors.append(
            ("stop", f"stop takes at most {STOP_STRINGS_MAX} strings of 1 to {STOP_STRING_MAX_CHARS} characters "
             "(an empty one would end every completion at once)")
        )  # fmt: skip
    return errors


# Knobs whose None means 'disabled' (their type is optional on both sides).
OPTIONAL = frozenset(
    {
        "micro_batch_size", "max_prompt_tokens", "epsilon_high", "delta", "ref_model_sync_steps", "max_grad_norm",
        "num_threads", "eval_every", "eval_max_new_tokens", "eval_max_prompts",
    }
)  # fmt: skip


def cross_field_errors(config: Any) -> list[tuple[str, str]]:
    """(knob, message) for every broken rule between knobs; the API schema runs the same rules (its
    validators name the same knob), which test_knob_drift checks case by case."""
    errors = []
    if config.epsilon_high is not None and config.epsilon_high < config.epsilon:
        errors.append(
            ("epsilon_high",
             "epsilon_high must be >= epsilon (it widens the upper clip range); set None to use epsilon")
        )  # fmt: skip
    if config.ref_model_sync_steps is not None and config.beta == 0:
        errors.append(
            ("ref_model_sync_steps",
             "ref_model_sync_steps needs beta > 0: with beta = 0 no reference model is loaded; set it to None")
        )  # fmt: skip
    if config.ref_model_sync_steps is not None and config.lora is not None:
        errors.append(
            ("ref_model_sync_steps",
             "ref_model_sync_steps cannot be used with lora: the reference is the base model with the adapters "
             "disabled, so there is no separate reference to sync; set it to None or train all weights")
        )  # fmt: skip
    if config.warmup_steps > config.max_steps * config.num_iterations * config.steps_per_generation:
        errors.append(
            ("warmup_steps",
             "warmup_steps exceeds the optimiser updates of the run "
             "(max_steps * num_iterations * steps_per_generation)")
        )  # fmt: skip
    if config.steps_per_generation > config.prompts_per_step * config.group_size:
        errors.append(
            ("steps_per_generation",
             "steps_per_generation must be <= prompts_per_step * group_size (each optimiser step needs a completion)")
        )  # fmt: skip
    return errors


def check(config: Any) -> None:
    """Raise ValueError with the first broken rule (ranges and choices first, then cross-field rules)."""
    errors = field_errors(config) or cross_field_errors(config)
    if errors:
        raise ValueError(errors[0][1])
