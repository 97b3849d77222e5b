"""Checks of a job spec that need the server's settings (limits, allowed model roots).

Pydantic already checked shapes and ranges; these checks raise the same 422 problem, naming the field.
"""

import re
from pathlib import Path

from app.core.config import Settings
from app.core.errors import spec_error
from app.schemas.job import HUB_ID_PATTERN, JobSpec

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


def check_limits(spec: JobSpec, settings: Settings) -> None:
    limits = [
        ("grpo.max_steps", spec.grpo.max_steps, settings.max_steps_limit),
        ("grpo.group_size", spec.grpo.group_size, settings.max_group_size),
        ("grpo.max_new_tokens", spec.grpo.max_new_tokens, settings.max_new_tokens_limit),
        ("dataset.rows", len(spec.dataset.rows), settings.max_dataset_rows),
    ]
    for field, value, limit in limits:
        if value > limit:
            raise spec_error(field, f"{value} exceeds this server's limit of {limit}", type_="limit_exceeded")


def check_rows(spec: JobSpec) -> None:
    prompt_field = spec.dataset.prompt_field
    reward_fields = sorted({field for reward in spec.rewards if (field := getattr(reward, "field", None))})
    for index, row in enumerate(spec.dataset.rows):
        prompt = row.get(prompt_field)
        if not isinstance(prompt, str) or not prompt:
            raise spec_error(f"dataset.rows[{index}].{prompt_field}", "every row needs a non-empty string prompt")
        for field in reward_fields:
            if field not in row:
                raise spec_error(f"dataset.rows[{index}].{field}", "missing: a reward reads this field")


def check_spec(spec: JobSpec, settings: Settings) -> None:
    check_model_source(spec.model.source, spec.model.revision, settings)
    check_limits(spec, settings)
    check_rows(spec)
