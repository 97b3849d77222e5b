"""Keyset pagination, newest first: stable under inserts, so pages never skip or repeat rows."""

import base64
import uuid
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from app.core.errors import spec_error

Row = TypeVar("Row")


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(row_id)
    except ValueError as exc:  # also binascii.Error and UnicodeDecodeError, both ValueErrors
        raise spec_error("cursor", "not a cursor issued by this server") from exc


def newest_first_page(
    session: Session, query: Select[tuple[Row]], model: Any, *, limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    """One page of `query` (rows of `model`, which has created_at and id) and the cursor of the next one."""
    if cursor:
        created, row_id = decode_cursor(cursor)
        query = query.where(or_(model.created_at < created, and_(model.created_at == created, model.id < row_id)))
    rows = list(session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None  # type: ignore[attr-defined]
    return page, next_cursor
