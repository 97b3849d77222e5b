"""Creation-time validation of reward definitions (POST /v1/rewards), beyond what the schema checks.

The pydantic schema already checks syntax and the `reward` signature of python code, regex
compilation and JSON Schema validity without running anything. These functions also *run* things:
they load the program in the sandbox (its imports and top-level code execute there) and score a
sample, so a definition that cannot work is refused before a job pays for it.
"""

import dataclasses
from typing import Any

from app.schemas.reward import PythonReward, RewardSample, RewardSampleScore, RewardSpec, check_reward_source
from workers.rewards.errors import ProgramError, RewardValidationError
from workers.rewards.sandbox import SandboxSettings
from workers.rewards.scorer import RewardFunction


def _one_worker(settings: SandboxSettings | None) -> SandboxSettings:
    return dataclasses.replace(settings or SandboxSettings(), workers=1)


def validate_python_reward(
    code: str, sample: RewardSample | None = None, *, settings: SandboxSettings | None = None, **limits: Any
) -> float | None:
    """Check python reward code: syntax and signature, then load it in the sandbox, then (with a sample)
    a dry run. Returns the dry-run score (None without a sample or for 'not applicable').

    Raises RewardValidationError (param 'code') naming what failed; SandboxUnavailable when isolation
    cannot be set up here (nothing is run unsandboxed). `limits`: PythonReward fields (timeout_s, ...).
    """
    try:
        check_reward_source(code)
    except ValueError as exc:
        raise RewardValidationError(str(exc), param="code") from None
    spec = PythonReward(code=code, **limits)
    result = validate_reward(spec, sample, settings=settings)
    return None if result is None else result.components[spec.type]


def validate_reward(
    spec: RewardSpec,
    sample: RewardSample | None = None,
    *,
    settings: SandboxSettings | None = None,
    **options: Any,
) -> RewardSampleScore | None:
    """Build `spec` as a job would (sandbox programs loaded, http hosts checked) and, with a sample,
    score it; any component error on the sample raises RewardValidationError. `options` are
    RewardFunction keyword arguments (count_tokens, http_allow_private, ...)."""
    try:
        reward_fn = RewardFunction([spec], sandbox=_one_worker(settings), **options)
    except ProgramError as exc:  # SandboxUnavailable and RewardConfigError propagate as they are
        raise RewardValidationError(str(exc), param="code") from None
    with reward_fn:
        if sample is None:
            return None
        (score,) = reward_fn.score_samples([sample])
    if score.errors:
        path, message = next(iter(score.errors.items()))
        raise RewardValidationError(
            f"dry run failed in {path!r}: {message}", param="code" if spec.type == "python" else None
        )
    return score
