"""Query and path parameters shared by the routes, so every list pages and filters the same way."""

from typing import Annotated

from fastapi import Path, Query
from pydantic import AwareDatetime, StringConstraints

from app.schemas.storable import MAX_INT32, NO_NUL

Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page; omit for the first page.")
]
NameContains = Annotated[
    str | None, Query(min_length=1, max_length=200, pattern=NO_NUL, description="Substring of the name.")
]
# Aware datetimes only: a timestamp without an offset is ambiguous, so it is a 422, not a guess.
CreatedAfter = Annotated[
    AwareDatetime | None, Query(description="Only items created at or after this time (ISO 8601 with offset).")
]
CreatedBefore = Annotated[
    AwareDatetime | None, Query(description="Only items created before this time (ISO 8601 with offset).")
]
# Steps and versions live in 32-bit integer columns: larger values are a 422, not a database error.
StepQuery = Annotated[int | None, Query(ge=0, le=MAX_INT32)]
StepPath = Annotated[int, Path(ge=0, le=MAX_INT32, description="A training step.")]
VersionPath = Annotated[int, Path(ge=1, le=MAX_INT32, description="A reward version.")]
# An item of a repeatable filter (metric names, event types): plain text the database can compare.
FilterText = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]
