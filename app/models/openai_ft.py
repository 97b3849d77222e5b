"""What the OpenAI-compatible fine-tuning API keeps beside a native job (docs/openai-fine-tuning.md)."""

import uuid
from typing import Any

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType


class OpenAIJobInfo(Base):
    """The OpenAI request's own fields of a job created through POST /v1/fine_tuning/jobs; the job itself
    (status, spec, events, checkpoints) is the native row."""

    __tablename__ = "openai_job_info"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(512))
    training_file: Mapped[str] = mapped_column(String(64))
    validation_file: Mapped[str | None] = mapped_column(String(64), nullable=True)
    suffix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed: Mapped[int] = mapped_column(Integer)
    # "metadata" is reserved on declarative classes, hence the attribute name.
    labels: Mapped[dict[str, str]] = mapped_column("metadata", JSONType, default=dict)
    method: Mapped[dict[str, Any]] = mapped_column(JSONType)  # resolved: every "auto" replaced
