"""POST /v1/preflight: the answer a worker computes for a job spec (workers/preflight.py)."""

import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class PreflightStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    expired = "expired"  # no worker took it while the API waited


class PreflightPublic(BaseModel):
    id: uuid.UUID
    object: str = "preflight"
    status: PreflightStatus
    report: dict[str, Any] | None = Field(
        None,
        description="reward (histogram per component and total), tied_groups (share, by_value), graders (latency "
        "p50/p95, error rate), completion_length (histogram, p50, p95, truncation_rate), estimate (step_s, "
        "total_s, tokens, reward calls), sampled, warnings (plain words).",
    )
    error: dict[str, Any] | None = Field(None, description="{code, message, param} when the spec cannot run.")
