"""A job's stored checkpoints."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, TimestampMixin, UTCDateTime, closed_set
from app.schemas.status import MergeStatus


class Checkpoint(TimestampMixin, Base):
    """A complete checkpoint in storage. Inserted only after every file is stored."""

    __tablename__ = "checkpoint"
    __table_args__ = (UniqueConstraint("job_id", "step"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    is_adapter: Mapped[bool] = mapped_column(Boolean, default=False)
    metrics: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict)
    eval_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Set when retention removed the files; the row stays so history remains readable.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # LoRA checkpoints only: None (never asked) or a MergeStatus (app.services.transitions.transition_merge).
    merge_status: Mapped[MergeStatus | None] = mapped_column(closed_set(MergeStatus, "merge_status"), nullable=True)
