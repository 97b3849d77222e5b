"""Budgets (per job in the spec, per tenant set by the operator) and the usage they are checked against."""

from pydantic import BaseModel, ConfigDict, Field

# Budget field -> the usage figure it caps (app/services/budgets.py keeps the two in step).
BUDGET_NAMES = ("wall_clock_s", "device_hours", "generated_tokens", "reward_calls", "reward_seconds")


class Budget(BaseModel):
    """Limits on what a job (or all of a tenant's jobs together) may consume; none by default. Crossing one
    pauses the job after the step that crossed it (an event names the budget and the figures); raise the
    budget (PATCH /jobs/{id}/budget, or the operator for a tenant) and resume to continue."""

    model_config = ConfigDict(extra="forbid")

    wall_clock_s: float | None = Field(
        None, gt=0, description="Seconds spent in training steps (wall clock; queueing and model loading excluded)."
    )
    device_hours: float | None = Field(None, gt=0, description="Device-hours: step wall time x devices, in hours.")
    generated_tokens: int | None = Field(None, gt=0, description="Completion tokens sampled.")
    reward_calls: int | None = Field(
        None, gt=0, description="Reward component calls (completions scored x components): paid verifiers, judges."
    )
    reward_seconds: float | None = Field(None, gt=0, description="Seconds spent computing rewards.")


class JobUsage(BaseModel):
    """What a job has consumed so far (steps re-run after a crash count again: they were paid for)."""

    wall_clock_s: float = Field(0.0, description="Seconds spent in training steps.")
    device_hours: float = Field(0.0, description="Step wall time x devices, in hours.")
    generated_tokens: int = Field(0, description="Completion tokens sampled.")
    prompt_tokens: int = Field(0, description="Prompt tokens prefilled.")
    trained_tokens: int = Field(0, description="Completion tokens that entered the loss.")
    reward_calls: int = Field(0, description="Reward component calls.")
    reward_seconds: float = Field(0.0, description="Seconds spent computing rewards.")
