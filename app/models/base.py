"""Declarative base: naming convention (stable constraint names for Alembic) and shared column types."""

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Enum, Float, MetaData, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from app.core.sanitize import safe_json, safe_text

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def closed_set(enum: type[StrEnum], name: str, length: int = 16) -> Enum:
    """A column type for a closed set: stored as its string, with a CHECK constraint naming the values
    (ck_<table>_<name>), and rejected in Python before it reaches the database."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=True,
        length=length,
        validate_strings=True,
        name=name,
        values_callable=lambda members: [member.value for member in members],
    )


class SafeJSON(TypeDecorator[Any]):
    """JSON that is always storable: strings made safe and non-finite floats nulled on the way in
    (app/core/sanitize.py), whoever writes it: metrics, checkpoints, events, alerts, job errors."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return safe_json(value)


class SafeString(TypeDecorator[str]):
    """Text that may hold user-controlled content (event messages): made safe on the way in."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else safe_text(value)


class FiniteFloat(TypeDecorator[float]):
    """A float column where NaN and infinities are stored as NULL: one meaning on every backend (SQLite
    turns NaN into NULL by itself; PostgreSQL would keep it, and JSON answers cannot carry it)."""

    impl = Float
    cache_ok = True

    def process_bind_param(self, value: float | None, dialect: Any) -> float | None:
        return value if value is None or math.isfinite(value) else None


# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere; made safe on write.
JSONType = SafeJSON()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime; use datetime.now(UTC)")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
