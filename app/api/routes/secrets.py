"""PUT/GET/DELETE /v1/secrets: values go in, only names and times come out."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from app.api.deps import CurrentTenant, SessionDep, SettingsDep
from app.core.errors import not_found
from app.schemas.judge import SECRET_NAME
from app.services.secrets import delete_secret, list_secrets, put_secret

router = APIRouter(prefix="/secrets", tags=["secrets"])
SecretName = Annotated[str, Path(pattern=SECRET_NAME, description="Letters, digits, '_', '.', '-'; 64 at most.")]


class SecretIn(BaseModel):
    value: str = Field(..., min_length=1, max_length=8192, description="The secret, e.g. an API key.")


class SecretPublic(BaseModel):
    name: str
    created_at: datetime
    updated_at: datetime


class SecretsPublic(BaseModel):
    data: list[SecretPublic]


@router.put("/{name}", response_model=SecretPublic)
def store_secret(
    name: SecretName, body: SecretIn, session: SessionDep, tenant: CurrentTenant, settings: SettingsDep
) -> SecretPublic:
    """Create or replace a secret (encrypted at rest; its value is never returned)."""
    secret = put_secret(
        session=session,
        tenant_id=tenant.id,
        name=name,
        value=body.value,
        server_secret=settings.secret_key.get_secret_value(),
    )
    return SecretPublic(name=secret.name, created_at=secret.created_at, updated_at=secret.updated_at)


@router.get("", response_model=SecretsPublic)
def read_secrets(session: SessionDep, tenant: CurrentTenant) -> SecretsPublic:
    """Your secrets' names and times (never their values)."""
    rows = list_secrets(session=session, tenant_id=tenant.id)
    return SecretsPublic(
        data=[SecretPublic(name=s.name, created_at=s.created_at, updated_at=s.updated_at) for s in rows]
    )


@router.delete("/{name}", status_code=204, response_class=Response)
def remove_secret(name: SecretName, session: SessionDep, tenant: CurrentTenant) -> Response:
    """Delete a secret; jobs that name it fail when they next need it."""
    if not delete_secret(session=session, tenant_id=tenant.id, name=name):
        raise not_found("secret")
    return Response(status_code=204)
