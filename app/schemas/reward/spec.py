"""The reward spec union (discriminated on `type`) and the multi reward that nests it."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas.reward.base import NAME_PATTERN, RewardBase
from app.schemas.reward.custom import HttpReward, PythonReward
from app.schemas.reward.graders import (
    ExactMatchReward,
    FormatReward,
    JsonSchemaReward,
    LengthReward,
    MathEquivalenceReward,
    NumericMatchReward,
    RegexReward,
    StringCheckReward,
    TextSimilarityReward,
)
from app.schemas.reward.judge import JudgeLabelReward, JudgeScoreReward


class MultiReward(BaseModel):
    """Combination of sub-rewards, scored as one component. Over the sub-scores s_i (weights w_i) that
    are not skipped: weighted_sum = sum w_i s_i; weighted_mean = sum w_i s_i / sum w_i (w_i > 0);
    min / max = min_i s_i / max_i s_i (weights ignored: 'min' is a logical AND of 0/1 checks).
    No sub-score left: the component is not applicable for that completion."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["multi"] = "multi"
    name: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description=RewardBase.model_fields["name"].description,
    )
    weight: float = Field(
        1.0,
        ge=-100.0,
        le=100.0,
        description="Weight of this component in the total reward.",
    )
    components: list["RewardSpec"] = Field(
        ...,
        min_length=1,
        max_length=16,
        description="Sub-rewards; their own errors follow their own on_error.",
    )
    aggregate: Literal["weighted_sum", "weighted_mean", "min", "max"] = Field(
        "weighted_mean",
        description="See the class formula.",
    )

    @model_validator(mode="after")
    def _check(self) -> "MultiReward":
        if self.aggregate == "weighted_mean" and any(c.weight <= 0 for c in self.components):
            raise ValueError("aggregate 'weighted_mean' needs positive sub-reward weights")
        if _depth(self) > 3:
            raise ValueError("multi rewards nest at most 3 levels deep")
        return self


def _depth(spec: "MultiReward") -> int:
    return 1 + max((_depth(c) for c in spec.components if isinstance(c, MultiReward)), default=0)


RewardSpec = Annotated[
    ExactMatchReward
    | StringCheckReward
    | NumericMatchReward
    | RegexReward
    | MathEquivalenceReward
    | JsonSchemaReward
    | FormatReward
    | LengthReward
    | TextSimilarityReward
    | MultiReward
    | PythonReward
    | HttpReward
    | JudgeScoreReward
    | JudgeLabelReward,
    Field(discriminator="type"),
]


MultiReward.model_rebuild()
