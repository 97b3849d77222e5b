"""Training jobs. Status changes only through app.services.transitions.transition()."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, TimestampMixin, UTCDateTime, closed_set
from app.schemas.job import JobStatus


class Job(TimestampMixin, Base):
    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_job_status_heartbeat", "status", "heartbeat_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[JobStatus] = mapped_column(closed_set(JobStatus, "job_status"), default=JobStatus.queued)
    total_steps: Mapped[int] = mapped_column(Integer)
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # Metrics of the last completed step, denormalised so listings need no join.
    latest_metrics: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict)
    # Reward-hacking alerts raised so far: [{code, message, step}].
    alerts: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # Seconds spent in training steps so far (for the ETA); excludes queueing and model loading.
    train_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    # Training steps recorded, re-runs after a resume included: with train_seconds, the step-time summary.
    steps_recorded: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Usage so far, summed per step by the worker (app/services/budgets.py); columns, not JSON, so a tenant's
    # totals are one SUM.
    usage_wall_clock_s: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    usage_device_s: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    usage_generated_tokens: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    usage_prompt_tokens: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    usage_trained_tokens: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    usage_reward_calls: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    usage_reward_s: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Set while a queued job waits because its tenant runs its maximum of jobs (no message is in the
    # broker for it then); a finishing job or the watchdog clears it and enqueues the job again.
    deferred_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
