"""OpenAI-compatible files (client.files): RFT JSONL uploads stored as native datasets."""

import shutil
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from app.api.deps import CurrentTenant, IdempotencyKey, SessionDep, SettingsDep, StoreDep
from app.api.openai_errors import OpenAIRoute
from app.core.errors import ProblemError, spec_error
from app.models import Dataset
from app.schemas.openai_ft import FileDeleted, FileObject, ListPage
from app.services import openai_files as files
from app.services.idempotency import run_idempotent
from app.services.openai_ft import after_row

router = APIRouter(prefix="/files", tags=["openai files"], route_class=OpenAIRoute)


@router.post("", response_model=FileObject)
async def create_file(
    request: Request,
    session: SessionDep,
    tenant: CurrentTenant,
    settings: SettingsDep,
    store: StoreDep,
    file: Annotated[UploadFile, File(description="JSONL, one {messages, ...fields} row per line.")],
    purpose: Annotated[str, Form()],
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Upload a reinforcement fine-tuning file; every line is checked now and the first bad one named."""
    if purpose != "fine-tune":
        raise spec_error("purpose", "only purpose='fine-tune' is stored here")
    if any(key.startswith("expires_after") for key in await request.form()):  # refused, not silently ignored
        raise spec_error("expires_after", "files here are kept until deleted: expires_after is not supported")
    filename = Path(file.filename or "upload.jsonl").name[:200] or "upload.jsonl"
    with files.tmpdir() as tmp:
        original = Path(tmp) / "original.jsonl"
        if file.size is not None and file.size > settings.max_dataset_bytes:  # refuse before copying a byte
            raise ProblemError(413, "payload_too_large", f"files are limited to {settings.max_dataset_bytes} bytes")
        with original.open("wb") as out:
            await run_in_threadpool(shutil.copyfileobj, file.file, out)
        with original.open("rb") as handle:
            received = await files.receive_file(
                upload=handle, size=original.stat().st_size, settings=settings, tmp=Path(tmp)
            )
        created, _ = await run_in_threadpool(
            lambda: run_idempotent(
                session=session,
                tenant_id=tenant.id,
                key=idempotency_key,
                scope="POST /v1/files",
                payload={"filename": filename, "sha256": received.sha256},
                status_code=200,
                create=lambda: files.file_object(
                    files.store_file(
                        session=session,
                        store=store,
                        tenant=tenant,
                        filename=filename,
                        received=received,
                        original=original,
                    )
                ),
                load=FileObject.model_validate,
            )
        )
        return created


@router.get("", response_model=ListPage)
def list_files(
    session: SessionDep,
    tenant: CurrentTenant,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 10000,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    purpose: str | None = None,
) -> ListPage:
    """The tenant's files (its datasets), newest first by default; `after` = the last id seen."""
    query = select(Dataset).where(Dataset.tenant_id == tenant.id)
    if purpose not in (None, "fine-tune"):
        return ListPage(data=[], has_more=False)
    newest = order == "desc"
    if after:
        last = files.require(files.get_dataset(session=session, tenant=tenant, file=after))
        query = query.where(after_row(Dataset, last, newest=newest))
    ordering = (Dataset.created_at.desc(), Dataset.id.desc()) if newest else (Dataset.created_at, Dataset.id)
    rows = list(session.scalars(query.order_by(*ordering).limit(limit + 1)))
    data = [files.file_object(row) for row in rows[:limit]]
    return ListPage(data=data, has_more=len(rows) > limit)


@router.get("/{file_id}", response_model=FileObject)
def retrieve_file(file_id: str, session: SessionDep, tenant: CurrentTenant) -> FileObject:
    return files.file_object(files.require(files.get_dataset(session=session, tenant=tenant, file=file_id)))


@router.delete("/{file_id}", response_model=FileDeleted)
def delete_file(file_id: str, session: SessionDep, tenant: CurrentTenant, store: StoreDep) -> FileDeleted:
    """Delete a file; refused (409) while a queued, running or paused job uses it."""
    dataset = files.require(files.get_dataset(session=session, tenant=tenant, file=file_id))
    files.delete_file(session=session, store=store, dataset=dataset)
    return FileDeleted(id=file_id)


@router.get(
    "/{file_id}/content",
    response_class=Response,
    responses={200: {"content": {"application/jsonl": {"schema": {"type": "string"}}}}},
)
def file_content(file_id: str, session: SessionDep, tenant: CurrentTenant, store: StoreDep) -> Response:
    """The bytes as uploaded."""
    dataset = files.require(files.get_dataset(session=session, tenant=tenant, file=file_id))
    return Response(files.content(store=store, dataset=dataset), media_type="application/jsonl")
