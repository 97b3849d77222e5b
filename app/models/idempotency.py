"""Remembered responses of create requests sent with an Idempotency-Key header."""

import uuid
from typing import Any

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, TimestampMixin


class IdempotencyRecord(TimestampMixin, Base):
    __tablename__ = "idempotency_record"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    # The route the key was used on ("POST /v1/jobs"): a key names one request, not one per route.
    scope: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the canonical request body
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None while in progress
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
