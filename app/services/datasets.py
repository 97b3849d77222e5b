"""Dataset uploads: stream JSONL to storage while validating it line by line."""

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.core.errors import FieldError, ProblemError
from app.core.storage import ObjectStore
from app.models import Dataset, Tenant
from app.schemas.storable import unstorable

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
        found = unstorable(row)
        if found:
            raise _bad_line(number, f"{found[0]} {found[1]}")
        self.rows += 1
        self.field_counts.update(row.keys())
        if len(self.preview) < PREVIEW_ROWS:
            self.preview.append(row)


@dataclass
class ReceivedUpload:
    """A validated upload in a local file, not stored yet."""

    path: Path
    summary: _Summary
    size: int
    sha256: str


async def receive_jsonl(*, body: AsyncIterator[bytes], path: Path, max_bytes: int, max_rows: int) -> ReceivedUpload:
    """Stream the body into `path`, validating it line by line; 413/422 naming the first bad line."""
    summary, digest, size, number = _Summary(), hashlib.sha256(), 0, 0
    pending = b""
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
    return ReceivedUpload(path=path, summary=summary, size=size, sha256=digest.hexdigest())


def store_dataset(
    *, session: Session, store: ObjectStore, tenant: Tenant, name: str, upload: ReceivedUpload
) -> Dataset:
    dataset_id = uuid.uuid4()
    key = f"datasets/{tenant.id}/{dataset_id}.jsonl"
    store.put_file(key, upload.path)
    dataset = Dataset(
        id=dataset_id,
        tenant_id=tenant.id,
        name=name,
        storage_key=key,
        row_count=upload.summary.rows,
        size_bytes=upload.size,
        field_counts=dict(upload.summary.field_counts),
        preview=upload.summary.preview,
        sha256=upload.sha256,
    )
    session.add(dataset)
    session.commit()
    return dataset


def read_rows(store: ObjectStore, dataset: Dataset) -> list[dict[str, Any]]:
    with store.open(dataset.storage_key) as handle:
        return [json.loads(line) for line in handle.read().splitlines() if line.strip()]
