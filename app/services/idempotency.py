"""Idempotent creates: the same Idempotency-Key and body replay the first response; another body is a 409.

Routes use it through the `IdempotentCreate` dependency (app/api/deps.py), which takes the scope from the
route. Only successful responses are remembered: a request that failed (bad input, quota, outage) leaves no
record, so retrying it with the same key runs it again.
"""

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import ProblemError
from app.models.idempotency import IdempotencyRecord

Model = TypeVar("Model", bound=BaseModel)


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _replay_or_conflict(record: IdempotencyRecord, scope: str, digest: str) -> Any:
    """The first response's body, or a 409 when the key was used otherwise or is still in use."""
    if record.scope != scope or record.fingerprint != digest:
        raise ProblemError(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request; use a new key",
        )
    if record.status_code is None:
        raise ProblemError(
            409,
            "idempotency_key_in_progress",
            "a request with this Idempotency-Key is still being processed; retry shortly",
            headers={"Retry-After": "1"},
        )
    return record.response


def run_idempotent(
    *,
    session: Session,
    tenant_id: uuid.UUID,
    key: str | None,
    scope: str,
    payload: Any,
    status_code: int,
    create: Callable[[], Model],
    load: Callable[[Any], Model],
) -> tuple[Model, bool]:
    """(the created resource, False), or (the first response loaded by `load`, True) for a replay."""
    if key is None:
        return create(), False
    digest = fingerprint(payload)
    record = session.get(IdempotencyRecord, (tenant_id, key))
    if record is not None:
        return load(_replay_or_conflict(record, scope, digest)), True
    session.add(IdempotencyRecord(tenant_id=tenant_id, key=key, scope=scope, fingerprint=digest))
    try:
        session.commit()
    except IntegrityError:  # a concurrent request with the same key got there first
        session.rollback()
        existing = session.get(IdempotencyRecord, (tenant_id, key))
        assert existing is not None
        return load(_replay_or_conflict(existing, scope, digest)), True
    try:
        result = create()
    except BaseException:
        session.rollback()
        session.delete(session.get(IdempotencyRecord, (tenant_id, key)))
        session.commit()
        raise
    record = session.get(IdempotencyRecord, (tenant_id, key))
    assert record is not None
    record.status_code, record.response = status_code, result.model_dump(mode="json")
    session.commit()
    return result, False
