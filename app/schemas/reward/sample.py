"""The reward-test endpoints' sample and its score."""

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.core.sanitize import SafeText


# --- reward test endpoint ---------------------------------------------------------------------------
class RewardSample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field("", max_length=200000, description="The prompt text, as the engine passes it.")
    completion: str = Field(..., max_length=200000, description="The completion to score.")
    row: dict[str, JsonValue] = Field(default_factory=dict, description="The dataset row (reference fields).")


class RewardSampleScore(BaseModel):
    total: float | None = Field(
        ...,
        description="Weighted sum of the components that produced a score; null when none did (the sample "
        "is unscorable: training leaves such a completion out of its group's baseline, advantage 0).",
    )
    components: dict[SafeText, float | None] = Field(
        ...,
        description="Raw score per component (multi sub-rewards as 'multi/sub'); null: not applicable, or "
        "failed with on_error='skip'.",
    )
    errors: dict[SafeText, SafeText] = Field(default_factory=dict, description="Error message per failed component.")
