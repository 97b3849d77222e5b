"""Fields every reward spec shares, and the name pattern of components."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


FIELD_DESC = "Dataset row field holding the reference."


class RewardBase(BaseModel):
    """Fields every reward has: its name and weight in the total, and what a failed call counts as."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description="Component name used in metrics (reward/<name>/...). Defaults to the type, "
        "suffixed with its position when a type repeats.",
    )
    weight: float = Field(
        1.0,
        ge=-100.0,
        le=100.0,
        description="Weight of this component in the total reward.",
    )
    on_error: Literal["score", "skip"] = Field(
        "score",
        description="What a failed call (exception, timeout, crash, non-numeric or non-finite return, "
        "unreachable verifier) counts as. 'score': the value error_score. 'skip': the component is left "
        "out of that completion's total and its raw value is NaN (like a 'not applicable' None).",
    )
    error_score: float = Field(
        0.0,
        ge=-100.0,
        le=100.0,
        description="Score of a failed call when on_error='score'.",
    )
    max_error_rate: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Largest fraction of a step's completions this component may fail on. Above it the "
        "job fails with a reward_error naming the reward, the count and sample failures. 1.0 never fails.",
    )
