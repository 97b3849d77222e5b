"""Query parameters shared by the list endpoints, so every list pages and filters the same way."""

from typing import Annotated

from fastapi import Query
from pydantic import AwareDatetime

Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page; omit for the first page.")
]
NameContains = Annotated[str | None, Query(min_length=1, max_length=200, description="Substring of the name.")]
# Aware datetimes only: a timestamp without an offset is ambiguous, so it is a 422, not a guess.
CreatedAfter = Annotated[
    AwareDatetime | None, Query(description="Only items created at or after this time (ISO 8601 with offset).")
]
CreatedBefore = Annotated[
    AwareDatetime | None, Query(description="Only items created before this time (ISO 8601 with offset).")
]
