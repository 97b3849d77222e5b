"""The one shape of every list response: `{"data": [...], "next_cursor": ...}` (docs/api-conventions.md)."""

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

Item = TypeVar("Item")


class ListPublic(BaseModel, Generic[Item]):
    """Subclassed per resource as `<Items>Public`, e.g. `class JobsPublic(ListPublic[JobPublic])`."""

    data: list[Item]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page; null on the last page.")
