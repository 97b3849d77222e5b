"""Keyset pagination on (created_at, id): stable under inserts, so pages never skip or repeat rows."""

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
        created_text, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        created = datetime.fromisoformat(created_text)
        if created.tzinfo is None:
            raise ValueError("naive timestamp")
        return created, uuid.UUID(row_id)
    except ValueError as exc:  # also binascii.Error and UnicodeDecodeError, both ValueErrors
        raise spec_error("cursor", "not a cursor issued by this server") from exc


def newest_first_page(
    session: Session, query: Select[tuple[Row]], model: Any, *, limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    """One page of `query` (rows of `model`, which has created_at and id) and the cursor of the next one."""
    return keyset_page(session, query, model, limit=limit, cursor=cursor, newest_first=True)


def oldest_first_page(
    session: Session, query: Select[tuple[Row]], model: Any, *, limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    return keyset_page(session, query, model, limit=limit, cursor=cursor, newest_first=False)


def keyset_page(
    session: Session, query: Select[tuple[Row]], model: Any, *, limit: int, cursor: str | None, newest_first: bool
) -> tuple[list[Row], str | None]:
    """Ordered by (created_at, id), the id breaking ties, so the order is total and stable."""
    if cursor:
        created, row_id = decode_cursor(cursor)
        if newest_first:
            after = or_(model.created_at < created, and_(model.created_at == created, model.id < row_id))
        else:
            after = or_(model.created_at > created, and_(model.created_at == created, model.id > row_id))
        query = query.where(after)
    order = (model.created_at.desc(), model.id.desc()) if newest_first else (model.created_at, model.id)
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None  # type: ignore[attr-defined]
    return page, next_cursor


def filter_created_and_name(
    query: Select[tuple[Row]],
    model: Any,
    *,
    name: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> Select[tuple[Row]]:
    """The list filters every resource shares: a name substring and a creation time range."""
    if name:
        query = query.where(model.name.contains(name, autoescape=True))
    if created_after is not None:
        query = query.where(model.created_at >= created_after)
    if created_before is not None:
        query = query.where(model.created_at < created_before)
    return query
