import tempfile
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from app.api.deps import CurrentTenant, Idempotent, SessionDep, SettingsDep, StoreDep
from app.api.params import CreatedAfter, CreatedBefore, Cursor, Limit, NameContains
from app.core.errors import ProblemError, not_found
from app.crud.pagination import filter_created_and_name, newest_first_page
from app.models import Dataset
from app.schemas.dataset import DatasetPublic, DatasetsPublic
from app.schemas.storable import NO_NUL
from app.services.datasets import receive_jsonl, store_dataset

router = APIRouter(prefix="/datasets", tags=["datasets"])

JSONL_TYPES = {"application/jsonl", "application/x-ndjson", "application/json-lines", "application/x-jsonlines"}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetPublic,
    openapi_extra={"requestBody": {"required": True, "content": {"application/jsonl": {"schema": {"type": "string"}}}}},
)
async def create_dataset(
    request: Request,
    session: SessionDep,
    tenant: CurrentTenant,
    settings: SettingsDep,
    store: StoreDep,
    idempotent: Idempotent,
    name: Annotated[str, Query(min_length=1, max_length=200, pattern=NO_NUL)],
    prompt_field: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            pattern=NO_NUL,
            description="A row that holds this field must hold a non-empty string there (the prompt).",
        ),
    ] = "prompt",
) -> DatasetPublic:
    """Upload JSONL (one JSON object per line), e.g. `curl --data-binary @rows.jsonl -H 'Content-Type:
    application/jsonl' '.../v1/datasets?name=train'`. The first bad line is named in the error; limits
    (row size, nesting depth) are in docs/api-conventions.md.

    With an `Idempotency-Key`, a retried upload of the same name and bytes returns the first dataset."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSONL_TYPES:
        raise ProblemError(415, "unsupported_media_type", f"send JSONL with Content-Type one of {sorted(JSONL_TYPES)}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_dataset_bytes:  # refuse before reading a byte
        raise ProblemError(413, "payload_too_large", f"datasets are limited to {settings.max_dataset_bytes} bytes")
    with tempfile.TemporaryDirectory() as tmp:
        upload = await receive_jsonl(
            body=request.stream(),
            path=Path(tmp) / "rows.jsonl",
            max_bytes=settings.max_dataset_bytes,
            max_rows=settings.max_dataset_rows,
            max_row_bytes=settings.max_dataset_row_bytes,
            prompt_field=prompt_field,
        )
        payload = {"name": name, "sha256": upload.sha256, "size_bytes": upload.size}
        if prompt_field != "prompt":  # keeps the fingerprints of keys recorded before the parameter existed
            payload["prompt_field"] = prompt_field
        return await run_in_threadpool(
            idempotent.run,
            payload,
            lambda: DatasetPublic.model_validate(
                store_dataset(session=session, store=store, tenant=tenant, name=name, upload=upload)
            ),
        )


@router.get("", response_model=DatasetsPublic)
def list_datasets(
    session: SessionDep,
    tenant: CurrentTenant,
    limit: Limit = 20,
    cursor: Cursor = None,
    name: NameContains = None,
    created_after: CreatedAfter = None,
    created_before: CreatedBefore = None,
) -> DatasetsPublic:
    """The caller's datasets, newest first."""
    query = filter_created_and_name(
        select(Dataset).where(Dataset.tenant_id == tenant.id),
        Dataset,
        name=name,
        created_after=created_after,
        created_before=created_before,
    )
    page, next_cursor = newest_first_page(session, query, Dataset, limit=limit, cursor=cursor)
    return DatasetsPublic(data=[DatasetPublic.model_validate(d) for d in page], next_cursor=next_cursor)


@router.get("/{dataset_id}", response_model=DatasetPublic)
def read_dataset(dataset_id: uuid.UUID, session: SessionDep, tenant: CurrentTenant) -> DatasetPublic:
    """An uploaded dataset: row count, how many rows carry each field, and a preview of the first rows."""
    dataset = session.scalar(select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant.id))
    if dataset is None:
        raise not_found("dataset")
    return DatasetPublic.model_validate(dataset)
