"""Named, versioned reward definitions. A version never changes; edits create a new one."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, TimestampMixin, UTCDateTime


class RewardDefinition(TimestampMixin, Base):
    __tablename__ = "reward_definition"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        Index("ix_reward_definition_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RewardVersion(TimestampMixin, Base):
    __tablename__ = "reward_version"

    reward_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("reward_definition.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)


class JobRewardUse(Base):
    """Which reward versions a job uses: deleting a definition is refused while an active job uses it."""

    __tablename__ = "job_reward_use"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    reward_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("reward_definition.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
