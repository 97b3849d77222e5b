"""Per-step metrics and job events."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.schemas.page import ListPublic
from app.schemas.status import EventLevel, EventType


class StepMetrics(BaseModel):
    step: int
    values: dict[str, float] = Field(..., description="Metric name -> value for this step.")


class MetricsPublic(ListPublic[StepMetrics]):
    pass


class JobEventPublic(BaseModel):
    model_config = {"from_attributes": True}

    id: int
    created_at: datetime
    step: int | None = Field(None, description="The training step the event belongs to, if any.")
    level: EventLevel
    type: EventType
    message: str
    data: dict[str, Any]


class JobEventsPublic(ListPublic[JobEventPublic]):
    pass
