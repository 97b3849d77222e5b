"""The job state machine: queued -> running -> succeeded | failed | cancelled, and pause/resume:
running -> pausing -> paused -> queued (app/services/pause.py).

Every status change goes through transition(), a conditional UPDATE, so two processes racing on
the same job (the API cancelling while a worker claims it) cannot both win.
"""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from app.models import Job, JobEvent
from app.schemas.job import TERMINAL_STATUSES, JobStatus

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.queued: frozenset({JobStatus.running, JobStatus.cancelled, JobStatus.failed, JobStatus.paused}),
    # running -> queued only when a lost worker's job is requeued (workers/watchdog.py); running -> paused
    # when the worker itself pauses (a budget crossed, a safeguard with on_alert='pause').
    JobStatus.running: frozenset(
        {JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled, JobStatus.queued}
        | {JobStatus.pausing, JobStatus.paused}
    ),
    # Pause and resume: app/services/pause.py. A pausing job may still end (its last step, a failure, a cancel).
    JobStatus.pausing: frozenset({JobStatus.paused, JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled}),
    JobStatus.paused: frozenset({JobStatus.queued, JobStatus.cancelled}),
    **{status: frozenset() for status in TERMINAL_STATUSES},
}


class InvalidTransition(ValueError):
    pass


def check_transition(current: JobStatus, to: JobStatus) -> None:
    if to not in ALLOWED[current]:
        raise InvalidTransition(f"a {current.value} job cannot become {to.value}")


def transition(
    session: Session,
    job_id: uuid.UUID,
    *,
    from_: set[JobStatus],
    to: JobStatus,
    message: str = "",
    event_data: dict[str, Any] | None = None,
    owned_by: str | None = None,
    conditions: Sequence[ColumnElement[bool]] = (),
    **values: Any,
) -> bool:
    """Move the job to `to` if it is currently in one of `from_`; False if it was not.

    With `owned_by`, only if that worker owns the job (a stalled worker must not finish a job that was
    requeued and handed to another); `conditions` are further ones checked in the same UPDATE (the
    tenant's running-job limit). Adds a status event in the same transaction. Does not commit.
    """
    for current in from_:
        check_transition(current, to)
    ownership = [Job.worker_id == owned_by] if owned_by else []
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(from_), *ownership, *conditions)
        .values(status=to, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        return False
    session.add(
        JobEvent(
            job_id=job_id,
            type="status",
            level="error" if to == JobStatus.failed else "info",
            message=message or f"job {to.value}",
            data={"status": to.value, **(event_data or {})},
        )
    )
    return True
