"""Tenants and API keys: creation, authentication, revocation. Owns its commits."""

import uuid
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.core.security import generate_api_key, hash_api_key
from app.models import ApiKey, Tenant
from app.models.base import utcnow


def get_tenant(*, session: Session, name: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.name == name))


def get_or_create_tenant(
    *, session: Session, name: str, max_running_jobs: int | None = None, max_queued_jobs: int | None = None
) -> Tenant:
    """The named tenant; a new one gets the given limits (default: the model's defaults)."""
    tenant = get_tenant(session=session, name=name)
    if tenant is None:
        limits = {"max_running_jobs": max_running_jobs, "max_queued_jobs": max_queued_jobs}
        tenant = Tenant(name=name, **{key: value for key, value in limits.items() if value is not None})
        session.add(tenant)
        session.commit()
    return tenant


def set_limits(
    *, session: Session, tenant: Tenant, max_running_jobs: int | None = None, max_queued_jobs: int | None = None
) -> Tenant:
    if max_running_jobs is not None:
        tenant.max_running_jobs = max_running_jobs
    if max_queued_jobs is not None:
        tenant.max_queued_jobs = max_queued_jobs
    session.commit()
    return tenant


def list_tenants(*, session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.name)))


def create_api_key(*, session: Session, tenant: Tenant, name: str, secret: str) -> tuple[ApiKey, str]:
    """Returns the row and the plaintext key; the plaintext is never stored and cannot be shown again."""
    plaintext = generate_api_key()
    api_key = ApiKey(tenant_id=tenant.id, name=name, prefix=plaintext[:12], key_hash=hash_api_key(plaintext, secret))
    session.add(api_key)
    session.commit()
    return api_key, plaintext


LAST_USED_RESOLUTION = timedelta(minutes=1)


def authenticate(*, session: Session, key: str, secret: str) -> Tenant | None:
    """The key's tenant, or None for an unknown or revoked key. One query; at most one write a minute a key."""
    row = session.execute(
        select(ApiKey, Tenant)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.key_hash == hash_api_key(key, secret))
    ).first()
    if row is None or row.ApiKey.revoked_at is not None:
        return None
    api_key, tenant = row
    now = utcnow()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        # Conditional, so concurrent requests with one key do not all write it.
        session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == api_key.id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_RESOLUTION),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    return tenant  # type: ignore[no-any-return]


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
