"""OpenAI files over native datasets: an RFT JSONL upload becomes a dataset whose rows carry a prompt.

Each row `{"messages": [...], <fields>}` is stored as `{"messages": [...], <fields>, "_openai_prompt": text}`
(the native engine samples from one prompt string); the uploaded bytes are kept too, for GET .../content.
"""

import dataclasses
import json
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import FieldError, ProblemError, not_found
from app.core.storage import ObjectStore
from app.models import Dataset, Job, Tenant
from app.schemas.openai_ft import FileObject
from app.services.datasets import receive_jsonl, store_dataset
from app.services.rewards import IN_USE

PROMPT_FIELD = "_openai_prompt"
ROLES = ("system", "developer", "user", "assistant", "tool")


def file_id(dataset_id: uuid.UUID) -> str:
    return f"file-{dataset_id.hex}"


def parse_file_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.removeprefix("file-"))
    except ValueError:
        return None


def original_prefix(dataset: Dataset) -> str:
    return f"openai-files/{dataset.tenant_id}/{dataset.id}"


def file_object(dataset: Dataset) -> FileObject:
    return FileObject(
        id=file_id(dataset.id), bytes=dataset.size_bytes, created_at=int(dataset.created_at.timestamp()),
        filename=dataset.name,
    )  # fmt: skip


def get_dataset(*, session: Session, tenant: Tenant, file: str) -> Dataset | None:
    dataset_id = parse_file_id(file)
    if dataset_id is None:
        return None
    return session.scalar(select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant.id))


def _bad_line(number: int, message: str) -> ProblemError:
    return ProblemError(
        400, "invalid_file", f"line {number}: {message}", title="Invalid file",
        errors=[FieldError(field="file", message=f"line {number}: {message}", type="invalid_file")],
    )  # fmt: skip


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    return None


def prompt_of(number: int, row: Any) -> str:
    """The prompt text of one RFT row: a lone message's text, else 'role: text' lines; 400 naming the line."""
    if not isinstance(row, dict):
        raise _bad_line(number, "each line must be a JSON object")
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad_line(number, "'messages' must be a non-empty list of {role, content}")
    lines = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        text = _text(message.get("content")) if isinstance(message, dict) else None
        if role not in ROLES or text is None:
            raise _bad_line(number, f"messages[{index}] needs a role in {ROLES} and text content")
        lines.append((role, text))
    if lines[-1][0] == "assistant":
        raise _bad_line(number, "the last message must not be the assistant's: the model writes that one")
    return lines[0][1] if len(lines) == 1 else "\n".join(f"{role}: {text}" for role, text in lines)


def convert(source: IO[bytes], target: IO[bytes]) -> None:
    """Write the native rows of an RFT JSONL file."""
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _bad_line(number, f"not valid JSON ({exc})") from exc
        prompt = prompt_of(number, row)
        target.write(json.dumps(row | {PROMPT_FIELD: prompt}).encode() + b"\n")


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk


async def receive_file(*, upload: IO[bytes], size: int, settings: Settings, tmp: Path) -> Any:
    """Convert and validate an upload (the native checks: JSON, size, rows); the validated native rows."""
    if size > settings.max_dataset_bytes:
        raise ProblemError(413, "payload_too_large", f"files are limited to {settings.max_dataset_bytes} bytes")
    with (tmp / "native.jsonl").open("wb") as target:
        convert(upload, target)
    received = await receive_jsonl(
        body=_chunks(tmp / "native.jsonl"),
        path=tmp / "rows.jsonl",
        max_bytes=settings.max_dataset_bytes * 2,  # the prompt column is added on top of the user's bytes
        max_rows=settings.max_dataset_rows,
    )
    return received


def store_file(
    *, session: Session, store: ObjectStore, tenant: Tenant, filename: str, received: Any, original: Path
) -> Dataset:
    # size_bytes is what the user uploaded (OpenAI's `bytes`), not the stored rows with their prompt column.
    received = dataclasses.replace(received, size=original.stat().st_size)
    dataset = store_dataset(session=session, store=store, tenant=tenant, name=filename, upload=received)
    store.put_file(f"{original_prefix(dataset)}/original.jsonl", original)
    return dataset


def content(*, store: ObjectStore, dataset: Dataset) -> bytes:
    key = f"{original_prefix(dataset)}/original.jsonl"
    with store.open(key if store.exists(key) else dataset.storage_key) as handle:
        return handle.read()


def delete_file(*, session: Session, store: ObjectStore, dataset: Dataset) -> None:
    """Refused (409) while a queued, running or paused job trains or evaluates on it."""
    jobs = session.scalars(select(Job).where(Job.tenant_id == dataset.tenant_id, Job.status.in_(IN_USE))).all()
    wanted = str(dataset.id)
    for job in jobs:
        spec = job.spec
        used = [
            spec.get("dataset", {}).get("dataset_id"),
            ((spec.get("eval") or {}).get("dataset") or {}).get("dataset_id"),
        ]
        if wanted in used:
            raise ProblemError(409, "file_in_use", f"job ftjob-{job.id.hex} ({job.status.value}) uses this file")
    store.delete_prefix(original_prefix(dataset))
    store.delete_prefix(dataset.storage_key)  # the stored rows: a prefix naming one object deletes it
    session.delete(dataset)
    session.commit()


def require(dataset: Dataset | None) -> Dataset:
    if dataset is None:
        raise not_found("file")
    return dataset


def tmpdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory()
