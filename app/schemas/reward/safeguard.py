"""Reward-hacking safeguards of a job."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


# --- reward-hacking safeguards ----------------------------------------------------------------------
class SafeguardSpec(BaseModel):
    """Reward-hacking detectors run on every step's metrics (workers/rewards/monitor.py). Each alert
    fires once when its condition starts to hold and re-arms when it clears."""

    model_config = ConfigDict(extra="forbid")

    on_alert: Literal["record", "stop", "pause"] = Field(
        "record",
        description="'record': an alert event only; 'stop': also stop the job; 'pause': checkpoint and pause "
        "the job for a person to look (POST /jobs/{id}/resume continues it).",
    )
    window: int = Field(
        10,
        ge=2,
        le=1000,
        description="Steps per window; trends compare the last window with the one before.",
    )
    reward_rise: float = Field(
        0.05,
        ge=0.0,
        description="Divergence: train reward mean rose by at least this over `eval_window` evals...",
    )
    accuracy_drop: float = Field(
        0.02,
        ge=0.0,
        description="...while held-out accuracy fell by at least this.",
    )
    eval_window: int = Field(
        3,
        ge=2,
        le=100,
        description="Divergence: number of consecutive held-out evaluations compared.",
    )
    length_growth: float = Field(
        2.0,
        gt=1.0,
        description="Length blow-up: window mean completion length >= this x the first window's.",
    )
    repetition_threshold: float = Field(
        0.3,
        gt=0.0,
        le=1.0,
        description="Repetition: window mean n-gram repeat ratio at or above this...",
    )
    repetition_rise: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="...and at least this much above the first window's.",
    )
    saturation_zero_std: float = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="Saturation: window mean fraction of groups whose rewards all tie (no signal)...",
    )
    entropy_collapse: float = Field(
        0.2,
        gt=0.0,
        lt=1.0,
        description="...with mean entropy below this fraction of the first window's.",
    )
    identical_threshold: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Identical completions: window mean duplicate fraction in groups.",
    )
