"""The state machines: jobs (queued -> running -> succeeded | failed | cancelled, and pause/resume:
running -> pausing -> paused -> queued, app/services/pause.py), on-demand evaluations
(queued -> running -> succeeded | failed) and LoRA merges ((none) -> queued -> running -> succeeded | failed).

Every status change goes through transition(), transition_evaluation() or transition_merge(), each a
conditional UPDATE, so two processes racing on the same row (the API cancelling while a worker claims it)
cannot both win.
"""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, or_, update
from sqlalchemy.orm import Session

from app.models import Checkpoint, Evaluation, Job, JobEvent
from app.schemas.job import TERMINAL_STATUSES, JobStatus
from app.schemas.status import EvaluationStatus, EventLevel, EventType, MergeStatus

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

EVALUATION_ALLOWED: dict[EvaluationStatus, frozenset[EvaluationStatus]] = {
    EvaluationStatus.queued: frozenset({EvaluationStatus.running, EvaluationStatus.failed}),
    EvaluationStatus.running: frozenset({EvaluationStatus.succeeded, EvaluationStatus.failed}),
    EvaluationStatus.succeeded: frozenset(),
    EvaluationStatus.failed: frozenset(),
}

# None: never asked for. A failed merge, or one whose request could not be enqueued, can be asked again;
# a lost one (its worker died while 'running') is claimed again by the next request's task.
MERGE_ALLOWED: dict[MergeStatus | None, frozenset[MergeStatus | None]] = {
    None: frozenset({MergeStatus.queued, MergeStatus.running}),
    MergeStatus.queued: frozenset({MergeStatus.queued, MergeStatus.running, None, MergeStatus.failed}),
    MergeStatus.running: frozenset({MergeStatus.running, MergeStatus.succeeded, MergeStatus.failed}),
    MergeStatus.failed: frozenset({MergeStatus.queued, MergeStatus.running}),
    MergeStatus.succeeded: frozenset(),
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
            type=EventType.status,
            level=EventLevel.error if to == JobStatus.failed else EventLevel.info,
            message=message or f"job {to.value}",
            data={"status": to.value, **(event_data or {})},
        )
    )
    return True


def transition_evaluation(
    session: Session, evaluation_id: uuid.UUID, *, from_: set[EvaluationStatus], to: EvaluationStatus, **values: Any
) -> bool:
    """Move an evaluation to `to` if it is in one of `from_`; False if it was not. Does not commit."""
    for current in from_:
        if to not in EVALUATION_ALLOWED[current]:
            raise InvalidTransition(f"a {current.value} evaluation cannot become {to.value}")
    result = session.execute(
        update(Evaluation)
        .where(Evaluation.id == evaluation_id, Evaluation.status.in_(from_))
        .values(status=to, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def transition_merge(
    session: Session,
    job_id: uuid.UUID,
    step: int,
    *,
    from_: set[MergeStatus | None],
    to: MergeStatus | None,
    conditions: Sequence[ColumnElement[bool]] = (),
) -> bool:
    """Move checkpoint `step`'s merge to `to` if it is in one of `from_` (None: never asked for). No commit."""
    for current in from_:
        if to not in MERGE_ALLOWED[current]:
            raise InvalidTransition(f"a merge in state {current} cannot become {to}")
    known = {status for status in from_ if status is not None}
    in_from: ColumnElement[bool] = Checkpoint.merge_status.in_(known)
    if None in from_:
        in_from = or_(in_from, Checkpoint.merge_status.is_(None))
    result = session.execute(
        update(Checkpoint)
        .where(Checkpoint.job_id == job_id, Checkpoint.step == step, in_from, *conditions)
        .values(merge_status=to)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
