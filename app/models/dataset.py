"""Uploaded datasets."""

import uuid
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, TimestampMixin


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
