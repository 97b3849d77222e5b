"""Evaluations of a job's checkpoints."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, TimestampMixin, UTCDateTime, closed_set
from app.schemas.status import EvaluationStatus, EvaluationTrigger


class Evaluation(TimestampMixin, Base):
    """Held-out evaluation of one checkpoint (scheduled during training, or requested later)."""

    __tablename__ = "evaluation"
    __table_args__ = (Index("ix_evaluation_job_id_created", "job_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[EvaluationTrigger] = mapped_column(closed_set(EvaluationTrigger, "evaluation_trigger"))
    # Changed only through app.services.transitions.transition_evaluation (created queued or succeeded).
    status: Mapped[EvaluationStatus] = mapped_column(closed_set(EvaluationStatus, "evaluation_status"))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    metrics: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
