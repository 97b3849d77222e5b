"""Dataset uploads: stream JSONL to storage while validating it line by line, off the event loop."""

import hashlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from app.core.errors import FieldError, ProblemError
from app.core.storage import ObjectStore
from app.models import Dataset, Tenant
from app.schemas.dataset import PREVIEW_ROWS, preview_row
from app.services.dataset_rows import FieldIssues, RowError, parse_row, prompt_problem

# Chunks are handed to a worker thread in batches of about this size: parsing JSON is CPU work that would
# stall every other request if it ran on the event loop, and one thread hop per small chunk costs more.
BATCH_BYTES = 1024 * 1024


def bad_line(number: int, message: str, field: str | None = None) -> ProblemError:
    name = f"line {number}" + (f".{field}" if field else "")
    return ProblemError(
        422,
        "invalid_jsonl",
        f"{name}: {message}",
        title="Invalid dataset",
        errors=[FieldError(field=name, message=message, type="invalid_jsonl")],
    )


def row_too_large(number: int, limit: int) -> ProblemError:
    message = f"a row (one line) is limited to {limit} bytes"
    return ProblemError(
        413,
        "row_too_large",
        f"line {number}: {message}",
        title="Row too large",
        errors=[FieldError(field=f"line {number}", message=message, type="too_large")],
    )


class _Summary:
    def __init__(self, prompt_field: str) -> None:
        self.prompt_field = prompt_field
        self.rows = 0
        self.field_counts: Counter[str] = Counter()
        self.issues = FieldIssues()
        self.preview: list[dict[str, Any]] = []

    def add(self, number: int, line: bytes) -> None:
        try:
            row = parse_row(line)
        except RowError as exc:
            raise bad_line(number, exc.message) from exc
        # A row may lack the prompt field (a job may read another one; submit checks the job's field),
        # but a row that holds it must hold a usable prompt there.
        if self.prompt_field in row and (problem := prompt_problem(row, self.prompt_field)):
            raise bad_line(number, problem, self.prompt_field)
        self.rows += 1
        self.field_counts.update(row.keys())
        self.issues.add(number, row)
        if len(self.preview) < PREVIEW_ROWS:
            self.preview.append(preview_row(row))


class _LineParser:
    """Splits a byte stream into lines in linear time: each byte is searched for a newline once, and the
    pieces of a line that spans chunks are joined once, when its newline arrives."""

    def __init__(self, out: IO[bytes], summary: _Summary, *, max_rows: int, max_row_bytes: int) -> None:
        self.out, self.summary = out, summary
        self.max_rows, self.max_row_bytes = max_rows, max_row_bytes
        self.number = 0  # lines completed so far
        self.pending: list[bytes] = []
        self.pending_bytes = 0

    def feed(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.out.write(chunk)
            self._split(chunk)
        if self.summary.rows > self.max_rows:
            raise ProblemError(413, "too_many_rows", f"datasets are limited to {self.max_rows} rows")

    def _split(self, chunk: bytes) -> None:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            piece = chunk[start:end]
            if self.pending:
                piece, self.pending, self.pending_bytes = b"".join([*self.pending, piece]), [], 0
            self._line(piece)
            start = end + 1
        if start < len(chunk):
            self.pending.append(chunk[start:])
            self.pending_bytes += len(chunk) - start
            if self.pending_bytes > self.max_row_bytes:
                raise row_too_large(self.number + 1, self.max_row_bytes)

    def _line(self, line: bytes) -> None:
        self.number += 1
        if len(line) > self.max_row_bytes:
            raise row_too_large(self.number, self.max_row_bytes)
        if line.strip():
            self.summary.add(self.number, line)

    def finish(self) -> None:
        if self.pending:
            rest, self.pending = b"".join(self.pending), []
            self._line(rest)


@dataclass
class ReceivedUpload:
    """A validated upload in a local file, not stored yet."""

    path: Path
    summary: _Summary
    size: int
    sha256: str


async def receive_jsonl(
    *,
    body: AsyncIterator[bytes],
    path: Path,
    max_bytes: int,
    max_rows: int,
    max_row_bytes: int,
    prompt_field: str = "prompt",
) -> ReceivedUpload:
    """Stream the body into `path`, validating it line by line; 413/422 naming the first bad line.

    The event loop only receives bytes; hashing, writing and parsing run in a worker thread."""
    summary, digest, size = _Summary(prompt_field), hashlib.sha256(), 0
    with path.open("wb") as out:
        parser = _LineParser(out, summary, max_rows=max_rows, max_row_bytes=max_row_bytes)

        def consume(chunks: list[bytes]) -> None:
            for chunk in chunks:
                digest.update(chunk)
            parser.feed(chunks)

        batch: list[bytes] = []
        batch_bytes = 0
        async for chunk in body:
            size += len(chunk)
            if size > max_bytes:
                raise ProblemError(413, "payload_too_large", f"datasets are limited to {max_bytes} bytes")
            batch.append(chunk)
            batch_bytes += len(chunk)
            if batch_bytes >= BATCH_BYTES:
                await run_in_threadpool(consume, batch)
                batch, batch_bytes = [], 0
        await run_in_threadpool(consume, batch)
        await run_in_threadpool(parser.finish)
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
        field_issues=upload.summary.issues.as_json(),
        preview=upload.summary.preview,
        sha256=upload.sha256,
    )
    session.add(dataset)
    session.commit()
    return dataset


class DatasetRowError(ValueError):
    """A stored row breaks the row rules (a dataset uploaded before they were checked)."""

    def __init__(self, line: int, field: str | None, message: str) -> None:
        super().__init__(f"line {line}" + (f".{field}" if field else "") + f": {message}")
        self.line, self.field = line, field


def read_rows(store: ObjectStore, dataset: Dataset, prompt_field: str | None = None) -> list[dict[str, Any]]:
    """The stored rows, each checked by the upload's rules (and for a prompt in `prompt_field`, if given)."""
    rows = []
    with store.open(dataset.storage_key) as handle:
        lines = handle.read().split(b"\n")  # numbered as the upload numbered them (S3 bodies iterate chunks)
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = parse_row(line)
            except RowError as exc:
                raise DatasetRowError(number, exc.field, exc.message) from exc
            if prompt_field is not None and (problem := prompt_problem(row, prompt_field)):
                raise DatasetRowError(number, prompt_field, problem)
            rows.append(row)
    return rows
