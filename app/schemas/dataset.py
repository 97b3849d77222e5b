"""Uploaded datasets."""

import json
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.schemas.page import ListPublic

# A preview is for people: a few rows, each cut to a bounded size, so a dataset of huge rows still lists
# in a few kilobytes (its rows are downloaded by the workers, never through these answers).
PREVIEW_ROWS = 5
PREVIEW_FIELDS = 20
PREVIEW_CHARS = 200
ELLIPSIS = "…"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + ELLIPSIS


def preview_value(value: Any) -> Any:
    """Strings longer than PREVIEW_CHARS are cut (ending in '…'); a list or object whose JSON is longer
    becomes the start of that JSON text; numbers, booleans and null are kept."""
    if isinstance(value, str):
        return _cut(value, PREVIEW_CHARS)
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False)
        return value if len(text) <= PREVIEW_CHARS else _cut(text, PREVIEW_CHARS)
    return value


def preview_row(row: dict[str, Any]) -> dict[str, Any]:
    return {_cut(str(key), PREVIEW_CHARS): preview_value(value) for key, value in list(row.items())[:PREVIEW_FIELDS]}


class DatasetPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: Literal["dataset"] = "dataset"
    id: uuid.UUID
    name: str
    row_count: int
    size_bytes: int
    field_counts: dict[str, int] = Field(..., description="Field name -> number of rows that have it.")
    preview: list[dict[str, Any]] = Field(
        ...,
        description=f"The first {PREVIEW_ROWS} rows, truncated: at most {PREVIEW_FIELDS} fields each, strings and "
        f"the JSON of lists and objects cut to {PREVIEW_CHARS} characters (ending in '{ELLIPSIS}').",
    )
    sha256: str
    created_at: datetime

    @field_validator("preview")
    @classmethod
    def _truncated(cls, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Also bounds datasets stored before previews were truncated.
        return [preview_row(row) for row in rows[:PREVIEW_ROWS]]


class DatasetsPublic(ListPublic[DatasetPublic]):
    pass
