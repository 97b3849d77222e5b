"""Webhook endpoints (CRUD under /v1/webhooks) and their delivery log."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

# Job event types a webhook can receive (job_event.type); [] subscribes to all of them.
EventType = Literal["status", "alert", "checkpoint", "evaluation", "resumed", "cancel_requested"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl = Field(..., description="Where to POST events (https in production).")
    description: str = Field("", max_length=500)
    event_types: list[EventType] = Field(
        default_factory=list, description="Job event types to send ('status', 'alert', ...); empty: all."
    )


class WebhookPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    object: str = "webhook_endpoint"
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(..., description="Shown only now: verify each delivery's webhook-signature with it.")


class WebhooksPublic(BaseModel):
    data: list[WebhookPublic]


class DeliveryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(..., description="The webhook-id header: the same on every retry (deduplicate on it).")
    object: str = "webhook_delivery"
    job_id: uuid.UUID
    event_id: int
    event_type: str
    status: str = Field(..., description="pending (retrying with backoff) | succeeded | failed (gave up).")
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict


class DeliveriesPublic(BaseModel):
    data: list[DeliveryPublic]
