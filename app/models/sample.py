"""Logged sample completions of a job's steps."""

import uuid

from sqlalchemy import Boolean, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, FiniteFloat, JSONType, SafeString


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
