"""Uploaded datasets."""

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class DatasetPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: Literal["dataset"] = "dataset"
    id: uuid.UUID
    name: str
    row_count: int
    size_bytes: int
    field_counts: dict[str, int] = Field(..., description="Field name -> number of rows that have it.")
    preview: list[dict[str, Any]] = Field(..., description="The first rows.")
    sha256: str
    created_at: datetime


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    next_cursor: str | None = None
