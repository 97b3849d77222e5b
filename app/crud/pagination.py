"""One keyset pagination contract for every list (docs/api-conventions.md).

A page is ordered by a tuple of columns whose last one is unique (e.g. (created_at, id), (step, position),
(id,)), so the order is total and stable under inserts: pages never skip or repeat a row. The cursor is
the key of the page's last row, as base64url JSON: opaque to clients, one format everywhere; a list
reads it from `?cursor=` and returns the next one as `next_cursor` (null on the last page).
"""

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Integer, Select, Uuid, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.core.errors import spec_error
from app.models.base import UTCDateTime
from app.schemas.storable import MAX_INT64

Row = TypeVar("Row")
Key = InstrumentedAttribute[Any]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def encode_cursor(values: Sequence[Any]) -> str:
    text = json.dumps([_jsonable(value) for value in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _parse(value: Any, key: Key) -> Any:
    column_type = key.property.columns[0].type
    if isinstance(column_type, UTCDateTime):
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
        if parsed is None or parsed.tzinfo is None:
            raise ValueError("not an aware timestamp")
        return parsed
    if isinstance(column_type, Uuid):
        return uuid.UUID(value)
    if isinstance(column_type, Integer):
        if type(value) is not int or not 0 <= value <= MAX_INT64:
            raise ValueError("not an integer key")
        return value
    raise TypeError(f"no cursor codec for {column_type!r}")  # a programming error, not a bad request


def decode_cursor(cursor: str, keys: Sequence[Key]) -> tuple[Any, ...]:
    """The key values in `cursor`, typed like `keys`; a 422 naming `cursor` for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        values = json.loads(text)
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError("wrong shape")
        return tuple(_parse(value, key) for value, key in zip(values, keys, strict=True))
    except (ValueError, TypeError, AttributeError, binascii.Error) as exc:
        raise spec_error("cursor", "not a cursor issued by this list; pass next_cursor as it came") from exc


def after_key(keys: Sequence[Key], values: Sequence[Any], *, descending: bool) -> Any:
    """Rows strictly after `values` in the order of `keys`: (a > x) or (a = x and b > y) or ..."""
    clauses = []
    for index, key in enumerate(keys):
        equal = [keys[i] == values[i] for i in range(index)]
        beyond = key < values[index] if descending else key > values[index]
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)


def keyset_page(
    session: Session,
    query: Select[tuple[Row]],
    keys: Sequence[Key],
    *,
    limit: int,
    cursor: str | None,
    descending: bool = False,
) -> tuple[list[Row], str | None]:
    """One page of `query` ordered by `keys`, and the cursor of the next page (None on the last)."""
    if cursor:
        query = query.where(after_key(keys, decode_cursor(cursor, keys), descending=descending))
    order = [key.desc() for key in keys] if descending else list(keys)
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    page = rows[:limit]
    if len(rows) <= limit:
        return page, None
    return page, encode_cursor([getattr(page[-1], key.key) for key in keys])


def newest_first_page(
    session: Session, query: Select[tuple[Row]], model: Any, *, limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    """A page of a resource list (jobs, datasets, rewards): newest first, the id breaking ties."""
    return keyset_page(session, query, [model.created_at, model.id], limit=limit, cursor=cursor, descending=True)


def oldest_first_page(
    session: Session, query: Select[tuple[Row]], model: Any, *, limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    return keyset_page(session, query, [model.created_at, model.id], limit=limit, cursor=cursor)


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
