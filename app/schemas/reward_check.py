"""The messages of a reward check: what the API asks the reward worker over the broker, and what comes
back. Reward tests, the creation dry run and the dashboard playground all travel this way, so the API
process never runs a grader or user code."""

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from app.core.sanitize import SafeText
from app.schemas.reward import RewardSample, RewardSampleScore


class RewardValidation(StrEnum):
    """What creating a reward (or a version) checked, as its answer says."""

    dry_run = "dry_run"  # built as a job would and scored on the caller's validation_sample
    checked = "checked"  # built as a job would (python: compiled, signature checked, loaded in the sandbox,
    # so imports and top-level code ran), but reward() was never called: no validation_sample was given


class RewardCheckRequest(BaseModel):
    op: Literal["score", "validate"]
    spec: dict[str, JsonValue] = Field(..., description="An inline reward spec (references already resolved).")
    samples: list[RewardSample] = Field(default_factory=list, description="op=score: the samples to score.")
    sample: RewardSample | None = Field(None, description="op=validate: the dry run's sample, if any.")


class RewardCheckError(BaseModel):
    code: Literal["invalid_reward", "sandbox_unavailable"]
    message: SafeText
    param: SafeText | None = None


class RewardCheckReply(BaseModel):
    results: list[RewardSampleScore] = Field(default_factory=list)
    validation: RewardValidation | None = None
    error: RewardCheckError | None = None
