import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from sqlalchemy import select

from app.api.deps import CurrentTenant, SessionDep, SettingsDep, StoreDep
from app.core.errors import ProblemError, not_found
from app.crud.pagination import newest_first_page
from app.models import Dataset
from app.schemas.dataset import DatasetPublic, DatasetsPublic
from app.services.datasets import upload_dataset

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
    name: Annotated[str, Query(min_length=1, max_length=200)],
) -> DatasetPublic:
    """Upload JSONL (one JSON object per line), e.g. `curl --data-binary @rows.jsonl -H 'Content-Type:
    application/jsonl' '.../v1/datasets?name=train'`. The first bad line is named in the error."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSONL_TYPES:
        raise ProblemError(415, "unsupported_media_type", f"send JSONL with Content-Type one of {sorted(JSONL_TYPES)}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_dataset_bytes:  # refuse before reading a byte
        raise ProblemError(413, "payload_too_large", f"datasets are limited to {settings.max_dataset_bytes} bytes")
    dataset = await upload_dataset(
        session=session,
        store=store,
        tenant=tenant,
        name=name,
        body=request.stream(),
        max_bytes=settings.max_dataset_bytes,
        max_rows=settings.max_dataset_rows,
    )
    return DatasetPublic.model_validate(dataset)


@router.get("", response_model=DatasetsPublic)
def list_datasets(
    session: SessionDep,
    tenant: CurrentTenant,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> DatasetsPublic:
    """The tenant's uploaded datasets, newest first (cursor pages)."""
    query = select(Dataset).where(Dataset.tenant_id == tenant.id)
    page, next_cursor = newest_first_page(session, query, Dataset, limit=limit, cursor=cursor)
    return DatasetsPublic(data=[DatasetPublic.model_validate(d) for d in page], next_cursor=next_cursor)


@router.get("/{dataset_id}", response_model=DatasetPublic)
def read_dataset(dataset_id: uuid.UUID, session: SessionDep, tenant: CurrentTenant) -> DatasetPublic:
    """An uploaded dataset: row count, how many rows carry each field, and a preview of the first rows."""
    dataset = session.scalar(select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant.id))
    if dataset is None:
        raise not_found("dataset")
    return DatasetPublic.model_validate(dataset)
