"""Preflight on the API side: check the spec like a submit would, hand it to a worker (never run here: it
loads a model and user code) and wait, bounded, for the report. Owns its commits."""

import logging
import time
import uuid
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import FieldError, ProblemError, not_found
from app.models import Preflight, Tenant
from app.models.base import utcnow
from app.schemas.job import JobCreate
from app.schemas.preflight import PreflightPublic, PreflightStatus
from app.services.jobs import pin_reward_references
from app.services.spec_checks import check_spec

logger = logging.getLogger(__name__)
POLL_S = 0.2
FINISHED = (PreflightStatus.succeeded, PreflightStatus.failed)


def request_preflight(
    *, session: Session, tenant: Tenant, job_in: JobCreate, prompts: int, settings: Settings, queue: Any
) -> PreflightPublic:
    job_in, _ = pin_reward_references(session=session, tenant=tenant, job_in=job_in)
    check_spec(job_in, settings, session=session, tenant_id=tenant.id)
    row = Preflight(
        tenant_id=tenant.id, spec=job_in.model_dump(mode="json"), prompts=prompts, status=PreflightStatus.queued
    )
    session.add(row)
    session.commit()
    try:
        queue.enqueue_preflight(row.id)
    except Exception as exc:
        logger.warning("could not enqueue preflight %s", row.id, exc_info=True)
        raise _unavailable("queue_unavailable", "the job queue is unavailable; retry later") from exc
    return _wait(session, row, settings.preflight_wait_s, min(settings.preflight_pickup_s, settings.preflight_wait_s))


def _wait(session: Session, row: Preflight, wait_s: float, pickup_s: float) -> PreflightPublic:
    """Until the report is in; 503 when no worker took the request within pickup_s or it outlasted wait_s."""
    started = time.monotonic()
    while time.monotonic() - started < wait_s:
        session.refresh(row)
        if row.status in FINISHED:
            return _answer(row)
        if row.status == PreflightStatus.queued and time.monotonic() - started > pickup_s:
            break
        time.sleep(POLL_S)
    expired = session.execute(
        update(Preflight)
        .where(Preflight.id == row.id, Preflight.status == PreflightStatus.queued)
        .values(status=PreflightStatus.expired, finished_at=utcnow())
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    if expired:
        raise _unavailable(
            "no_worker", f"no worker took the preflight within {pickup_s:g} s (all busy or none running)"
        )
    raise _unavailable("preflight_timeout", f"the preflight is still running; GET /v1/preflight/{row.id} later")


def _answer(row: Preflight) -> PreflightPublic:
    if row.status == PreflightStatus.failed and row.error:
        param, message = row.error.get("param"), row.error.get("message", "the preflight failed")
        raise ProblemError(
            422,
            "preflight_failed",
            message,
            errors=[FieldError(field=param, message=message, type="preflight_failed")] if param else None,
        )
    return PreflightPublic(id=row.id, status=PreflightStatus(row.status), report=row.report, error=row.error)


def _unavailable(code: str, detail: str) -> ProblemError:
    return ProblemError(503, code, detail, headers={"Retry-After": "30"})


def read_preflight(*, session: Session, tenant: Tenant, preflight_id: uuid.UUID) -> PreflightPublic:
    row = session.get(Preflight, preflight_id)
    if row is None or row.tenant_id != tenant.id:
        raise not_found("preflight")
    return PreflightPublic(id=row.id, status=PreflightStatus(row.status), report=row.report, error=row.error)
