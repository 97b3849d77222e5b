"""Preflight checks (POST /v1/preflight): the API writes the request, a worker writes the report."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, TimestampMixin, UTCDateTime


class Preflight(TimestampMixin, Base):
    __tablename__ = "preflight"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)  # resolved: reward references pinned
    prompts: Mapped[int] = mapped_column(Integer)
    # app.schemas.preflight.PreflightStatus: queued -> running -> succeeded | failed; queued -> expired when
    # no worker took it while the API waited (a late worker then skips it).
    status: Mapped[str] = mapped_column(String(16))
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
