"""Append-only job progress: per-step metrics and events."""

import uuid
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, SafeString, TimestampMixin, closed_set
from app.schemas.status import EventLevel, EventType


class JobMetric(Base):
    """One number of one step. The primary key makes a retried write (after a resume) an upsert."""

    __tablename__ = "job_metric"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class JobEvent(TimestampMixin, Base):
    """Status changes, alerts and notable happenings, in order (the id is the SSE event id)."""

    __tablename__ = "job_event"
    __table_args__ = (Index("ix_job_event_job_id_id", "job_id", "id"),)

    # BigInteger on PostgreSQL; SQLite only autoincrements a plain INTEGER primary key.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    level: Mapped[EventLevel] = mapped_column(closed_set(EventLevel, "event_level"), default=EventLevel.info)
    type: Mapped[EventType] = mapped_column(closed_set(EventType, "event_type", length=64))
    message: Mapped[str] = mapped_column(SafeString(), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The training step an event belongs to, when it belongs to one (metrics, checkpoints, evaluations).
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
