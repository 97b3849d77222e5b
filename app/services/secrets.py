"""Tenant secrets: values are encrypted at rest (Fernet, key derived from GRPO_SECRET_KEY), listed by name
only, and decrypted only inside workers that need them (a judge reward's API key). Never commits twice."""

import base64
import hashlib
import uuid

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import TenantSecret
from app.models.base import utcnow


def _fernet(server_secret: str) -> Fernet:
    key = hashlib.sha256(f"grpo-tenant-secrets:{server_secret}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def put_secret(*, session: Session, tenant_id: uuid.UUID, name: str, value: str, server_secret: str) -> TenantSecret:
    secret = session.scalar(select(TenantSecret).where(TenantSecret.tenant_id == tenant_id, TenantSecret.name == name))
    ciphertext = _fernet(server_secret).encrypt(value.encode())
    if secret is None:
        secret = TenantSecret(tenant_id=tenant_id, name=name, ciphertext=ciphertext)
        session.add(secret)
    else:
        secret.ciphertext, secret.updated_at = ciphertext, utcnow()
    session.commit()
    return secret


def list_secrets(*, session: Session, tenant_id: uuid.UUID) -> list[TenantSecret]:
    return list(
        session.scalars(select(TenantSecret).where(TenantSecret.tenant_id == tenant_id).order_by(TenantSecret.name))
    )


def delete_secret(*, session: Session, tenant_id: uuid.UUID, name: str) -> bool:
    secret = session.scalar(select(TenantSecret).where(TenantSecret.tenant_id == tenant_id, TenantSecret.name == name))
    if secret is None:
        return False
    session.delete(secret)
    session.commit()
    return True


def read_secret(*, session: Session, tenant_id: uuid.UUID, name: str, server_secret: str) -> str | None:
    """The plain value, for workers only; None when the tenant has no such secret (or it cannot be read
    because the server secret changed)."""
    secret = session.scalar(select(TenantSecret).where(TenantSecret.tenant_id == tenant_id, TenantSecret.name == name))
    if secret is None:
        return None
    try:
        return _fernet(server_secret).decrypt(secret.ciphertext).decode()
    except InvalidToken:
        return None
