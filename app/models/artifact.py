"""What a job produces besides metrics: checkpoints, evaluations and logged sample completions."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, FiniteFloat, JSONType, SafeString, TimestampMixin, UTCDateTime, closed_set
from app.schemas.status import EvaluationStatus, EvaluationTrigger, MergeStatus


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


class JobSample(Base):
    """A logged completion. Keyed by its place in the step's log, so a re-run step overwrites, never duplicates."""

    __tablename__ = "job_sample"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt_index: Mapped[int] = mapped_column(Integer)  # the prompt's row in the dataset
    group_index: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(SafeString())  # model output: may hold NUL or escape sequences
    completion: Mapped[str] = mapped_column(SafeString())
    # NULL: an unscorable completion (the scorer's total is NaN; it gets advantage 0 in the engine)
    reward: Mapped[float | None] = mapped_column(FiniteFloat(), nullable=True)
    components: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict)
    advantage: Mapped[float | None] = mapped_column(FiniteFloat(), nullable=True)
    num_tokens: Mapped[int] = mapped_column(Integer)
    truncated: Mapped[bool] = mapped_column(Boolean)


class Dataset(TimestampMixin, Base):
    """An uploaded JSONL dataset; rows live in storage, a summary here."""

    __tablename__ = "dataset"
    __table_args__ = (Index("ix_dataset_tenant_created", "tenant_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    storage_key: Mapped[str] = mapped_column(String(500))
    row_count: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # How many rows carry each field: a job can check that every row has its prompt and reward fields.
    field_counts: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    # Per field, the first line lacking it ("missing") and the first where it is not a non-empty string
    # ("not_text"): a job names the line of a bad prompt at submit. Null for datasets stored before.
    field_issues: Mapped[dict[str, dict[str, int]] | None] = mapped_column(JSONType, nullable=True)
    preview: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    sha256: Mapped[str] = mapped_column(String(64))
