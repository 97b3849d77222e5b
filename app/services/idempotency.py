"""Idempotent creates: the same Idempotency-Key and body replay the first response; another body is a 409.

Only successful responses are remembered: a request that failed (bad input, quota, outage) leaves no
record, so retrying it with the same key runs it again.
"""

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import ProblemError
from app.models.idempotency import IdempotencyRecord


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _replay_or_conflict(record: IdempotencyRecord, scope: str, digest: str) -> JSONResponse:
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
    return JSONResponse(record.response, status_code=record.status_code, headers={"Idempotent-Replayed": "true"})


def run_idempotent(
    *,
    session: Session,
    tenant_id: uuid.UUID,
    key: str | None,
    scope: str,
    payload: Any,
    status_code: int,
    create: Callable[[], BaseModel],
) -> BaseModel | JSONResponse:
    if key is None:
        return create()
    digest = fingerprint(payload)
    record = session.get(IdempotencyRecord, (tenant_id, key))
    if record is not None:
        return _replay_or_conflict(record, scope, digest)
    session.add(IdempotencyRecord(tenant_id=tenant_id, key=key, scope=scope, fingerprint=digest))
    try:
        session.commit()
    except IntegrityError:  # a concurrent request with the same key got there first
        session.rollback()
        return _replay_or_conflict(session.get(IdempotencyRecord, (tenant_id, key)), scope, digest)  # type: ignore[arg-type]
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
    return result
