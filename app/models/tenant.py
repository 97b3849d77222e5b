"""Tenants and their API keys. Every resource row carries a tenant_id."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, JSONType, TimestampMixin, UTCDateTime


class Tenant(TimestampMixin, Base):
    __tablename__ = "tenant"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    max_running_jobs: Mapped[int] = mapped_column(Integer, default=2)
    max_queued_jobs: Mapped[int] = mapped_column(Integer, default=20)
    # Budgets over all the tenant's jobs together (app.schemas.budget.Budget as JSON); set by the operator.
    budget: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)

    api_keys: Mapped[list["ApiKey"]] = relationship(back_populates="tenant")


class ApiKey(TimestampMixin, Base):
    __tablename__ = "api_key"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The first characters of the key, shown in listings so people can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    # HMAC-SHA256 of the whole key under the server secret; the key itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    tenant: Mapped[Tenant] = relationship(back_populates="api_keys")
