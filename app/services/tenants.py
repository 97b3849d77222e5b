"""Tenants and API keys: creation, authentication, revocation. Owns its commits."""

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.security import generate_api_key, hash_api_key
from app.models import ApiKey, Tenant
from app.models.base import utcnow


def get_or_create_tenant(*, session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.commit()
    return tenant


def create_api_key(*, session: Session, tenant: Tenant, name: str, secret: str) -> tuple[ApiKey, str]:
    """Returns the row and the plaintext key; the plaintext is never stored and cannot be shown again."""
    plaintext = generate_api_key()
    api_key = ApiKey(tenant_id=tenant.id, name=name, prefix=plaintext[:12], key_hash=hash_api_key(plaintext, secret))
    session.add(api_key)
    session.commit()
    return api_key, plaintext


def authenticate(*, session: Session, key: str, secret: str) -> Tenant | None:
    api_key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key, secret)))
    if api_key is None or api_key.revoked_at is not None:
        return None
    return session.get(Tenant, api_key.tenant_id)


def revoke_api_key(*, session: Session, key_id: uuid.UUID) -> bool:
    api_key = session.get(ApiKey, key_id)
    if api_key is None or api_key.revoked_at is not None:
        return False
    api_key.revoked_at = utcnow()
    session.commit()
    return True


def list_api_keys(*, session: Session, tenant: Tenant | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at)
    if tenant is not None:
        query = query.where(ApiKey.tenant_id == tenant.id)
    return list(session.scalars(query))
