"""Reward definitions: a discriminated union on `type`.

These are the declarative specs users send; workers/rewards turns them into scoring callables.
Every reward reads the completion and, where it compares against a reference, a field of the
dataset row named by `field`.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class RewardBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Component name used in metrics (reward/<name>/mean). Defaults to the type, "
        "suffixed with its position when a type repeats.",
    )
    weight: float = Field(1.0, ge=-100.0, le=100.0, description="Weight of this component in the total reward.")


class ExactMatchReward(RewardBase):
    type: Literal["exact_match"] = "exact_match"
    field: str = Field("answer", min_length=1, description="Dataset field holding the reference answer.")
    strip: bool = Field(True, description="Ignore leading and trailing whitespace on both sides.")
    case_sensitive: bool = Field(True, description="Compare case-sensitively.")


class NumericMatchReward(RewardBase):
    type: Literal["numeric_match"] = "numeric_match"
    field: str = Field("answer", min_length=1, description="Dataset field holding the reference number.")
    tolerance: float = Field(
        1e-6, ge=0.0, description="Absolute tolerance; the last number in the completion is compared."
    )


RewardSpec = Annotated[ExactMatchReward | NumericMatchReward, Field(discriminator="type")]
