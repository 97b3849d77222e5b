"""Dataset uploads: stream JSONL to storage while validating it line by line."""

import hashlib
import json
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.core.errors import FieldError, ProblemError
from app.core.storage import ObjectStore
from app.models import Dataset, Tenant

PREVIEW_ROWS = 5


def _bad_line(number: int, message: str) -> ProblemError:
    return ProblemError(
        422,
        "invalid_jsonl",
        f"line {number}: {message}",
        title="Invalid dataset",
        errors=[FieldError(field=f"line {number}", message=message, type="invalid_jsonl")],
    )


class _Summary:
    def __init__(self) -> None:
        self.rows = 0
        self.field_counts: Counter[str] = Counter()
        self.preview: list[dict[str, Any]] = []

    def add(self, number: int, line: bytes) -> None:
        try:
            row = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _bad_line(number, f"not valid JSON ({exc})") from exc
        if not isinstance(row, dict) or not row:
            raise _bad_line(number, "each line must be a non-empty JSON object")
        self.rows += 1
        self.field_counts.update(row.keys())
        if len(self.preview) < PREVIEW_ROWS:
            self.preview.append(row)


async def upload_dataset(
    *,
    session: Session,
    store: ObjectStore,
    tenant: Tenant,
    name: str,
    body: AsyncIterator[bytes],
    max_bytes: int,
    max_rows: int,
) -> Dataset:
    summary, digest, size, number = _Summary(), hashlib.sha256(), 0, 0
    pending = b""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        with path.open("wb") as out:
            async for chunk in body:
                size += len(chunk)
                if size > max_bytes:
                    raise ProblemError(413, "payload_too_large", f"datasets are limited to {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    number += 1
                    if line.strip():
                        summary.add(number, line)
                if summary.rows > max_rows:
                    raise ProblemError(413, "too_many_rows", f"datasets are limited to {max_rows} rows")
            if pending.strip():
                summary.add(number + 1, pending)
        if summary.rows == 0:
            raise ProblemError(
                422,
                "empty_dataset",
                "the upload contains no rows",
                title="Invalid dataset",
                errors=[FieldError(field="body", message="no rows", type="empty")],
            )
        dataset_id = uuid.uuid4()
        key = f"datasets/{tenant.id}/{dataset_id}.jsonl"
        store.put_file(key, path)
    dataset = Dataset(
        id=dataset_id,
        tenant_id=tenant.id,
        name=name,
        storage_key=key,
        row_count=summary.rows,
        size_bytes=size,
        field_counts=dict(summary.field_counts),
        preview=summary.preview,
        sha256=digest.hexdigest(),
    )
    session.add(dataset)
    session.commit()
    return dataset


def read_rows(store: ObjectStore, dataset: Dataset) -> list[dict[str, Any]]:
    with store.open(dataset.storage_key) as handle:
        return [json.loads(line) for line in handle.read().splitlines() if line.strip()]
