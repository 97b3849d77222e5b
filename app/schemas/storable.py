"""Values every database backend can store, checked at the API boundary so a bad input is a 422, not a 500.

PostgreSQL refuses NUL characters in text and JSONB, JSONB refuses NaN and infinities (Python's json
module accepts them in a request), and integer columns are 32-bit; SQLite is laxer, so without these
checks the same request would succeed on one backend and fail with a 500 on the other.
"""

import math
from typing import Any

from pydantic import BaseModel, model_validator
from pydantic_core import PydanticCustomError

MAX_INT32 = 2**31 - 1  # integer columns (steps, versions)
MAX_INT64 = 2**63 - 1  # bigint columns (event ids)
NO_NUL = r"^[^\x00]*$"  # for query parameters that reach the database


def unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """(path, reason) of the first value no backend can store, or None."""
    if isinstance(value, str):
        return (path or "body", "contains a NUL character (\\u0000)") if "\x00" in value else None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "body", "must be a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return child, "a key contains a NUL character (\\u0000)"
            found = unstorable(item, child)
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable(item, f"{path}[{index}]")
            if found:
                return found
    return None


class StorableBody(BaseModel):
    """Base of request bodies: refuses values that cannot be stored, naming where they are."""

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        found = unstorable(data)
        if found:
            raise PydanticCustomError("unstorable_value", "{path}: {reason}", {"path": found[0], "reason": found[1]})
        return data
