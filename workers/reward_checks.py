"""Reward checks on a worker: score samples or validate a definition, for the API (over the broker).

Celery-free (workers/reward_tasks.py is its thin task), so tests call it directly. Every failure comes
back as a structured reply, never an exception: `invalid_reward` (the caller's spec or code, with
the field) or `sandbox_unavailable` (this machine cannot isolate or load the program: an operator
problem, logged here with the reason). Text in the reply is made safe by the reply's schema.
"""

import logging
from typing import Any

from pydantic import TypeAdapter

from app.schemas.reward import RewardSpec
from app.schemas.reward_check import RewardCheckError, RewardCheckReply, RewardCheckRequest, RewardValidation
from workers.rewards import (
    ProgramError,
    RewardConfigError,
    RewardValidationError,
    SandboxUnavailable,
    score_samples,
    validate_reward,
)

logger = logging.getLogger(__name__)
_SPEC: TypeAdapter[Any] = TypeAdapter(RewardSpec)


def run_reward_check(message: dict[str, Any]) -> dict[str, Any]:
    """One check, from the task's JSON message to the reply's JSON."""
    return check(RewardCheckRequest.model_validate(message)).model_dump(mode="json")


def check(request: RewardCheckRequest) -> RewardCheckReply:
    try:
        spec = _SPEC.validate_python(request.spec)
        if request.op == "score":
            return RewardCheckReply(results=score_samples([spec], request.samples))
        validate_reward(spec, request.sample)
        return RewardCheckReply(validation=RewardValidation.dry_run if request.sample else RewardValidation.checked)
    except SandboxUnavailable as exc:
        logger.error("reward sandbox unavailable: %s", exc)
        return _error("sandbox_unavailable", str(exc))
    except ProgramError as exc:  # a python reward that fails to load (built-ins raise SandboxUnavailable)
        return _error("invalid_reward", str(exc), "code")
    except (RewardValidationError, RewardConfigError) as exc:
        return _error("invalid_reward", str(exc), exc.param)
    except ValueError as exc:  # a spec the schema let through but the builder refuses (duplicate names, ...)
        return _error("invalid_reward", str(exc))


def _error(code: str, message: str, param: str | None = None) -> RewardCheckReply:
    return RewardCheckReply(error=RewardCheckError.model_validate({"code": code, "message": message, "param": param}))
