"""On-demand evaluations on the worker side: claim, heartbeat, finish, recover from a lost worker."""

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import Evaluation, JobEvent
from app.models.base import utcnow
from app.schemas.status import EvaluationStatus, EventLevel, EventType
from app.services.artifacts import attach_eval_score
from app.services.transitions import transition_evaluation


def claim_evaluation(*, session: Session, evaluation_id: uuid.UUID) -> Evaluation | None:
    claimed = transition_evaluation(
        session, evaluation_id, from_={EvaluationStatus.queued}, to=EvaluationStatus.running, heartbeat_at=utcnow()
    )
    session.commit()
    return session.get(Evaluation, evaluation_id) if claimed else None


def beat_evaluation(*, session: Session, evaluation_id: uuid.UUID) -> None:
    session.execute(
        update(Evaluation)
        .where(Evaluation.id == evaluation_id, Evaluation.status == EvaluationStatus.running)
        .values(heartbeat_at=utcnow())
    )
    session.commit()


def finish_evaluation(
    *,
    session: Session,
    evaluation_id: uuid.UUID,
    metrics: dict[str, float] | None = None,
    error: dict[str, Any] | None = None,
) -> None:
    """running -> succeeded | failed; a no-op when the evaluation is not running (already finished)."""
    to = EvaluationStatus.failed if error else EvaluationStatus.succeeded
    finished = transition_evaluation(
        session,
        evaluation_id,
        from_={EvaluationStatus.running},
        to=to,
        metrics=metrics or {},
        error=error,
        finished_at=utcnow(),
    )
    evaluation = session.get(Evaluation, evaluation_id, populate_existing=True)
    if not finished or evaluation is None:
        session.commit()
        return
    if metrics:
        attach_eval_score(session=session, job_id=evaluation.job_id, step=evaluation.step, metrics=metrics)
    session.add(
        JobEvent(
            job_id=evaluation.job_id,
            type=EventType.evaluation,
            step=evaluation.step,
            level=EventLevel.error if error else EventLevel.info,
            message=f"on-demand evaluation of step {evaluation.step} {evaluation.status}",
            data={
                "evaluation_id": str(evaluation_id),
                "step": evaluation.step,
                "metrics": metrics or {},
                "error": error,
            },
        )
    )
    session.commit()


def fail_stale_evaluations(*, session: Session, timeout: timedelta, now: datetime | None = None) -> list[uuid.UUID]:
    """Running evaluations whose heartbeat stopped (their worker died): failed with the reason, never left
    'running'. Not requeued: an evaluation that killed its worker (out of memory) would kill the next one
    too; asking again (POST .../evaluations) is one call."""
    deadline = (now or utcnow()) - timeout
    stale = list(
        session.scalars(
            select(Evaluation.id).where(
                Evaluation.status == EvaluationStatus.running, Evaluation.heartbeat_at < deadline
            )
        )
    )
    for evaluation_id in stale:
        finish_evaluation(
            session=session,
            evaluation_id=evaluation_id,
            error={
                "code": "worker_lost",
                "param": None,
                "message": f"its worker stopped sending heartbeats for over {timeout.total_seconds():.0f} s "
                "(killed or out of memory); request the evaluation again",
            },
        )
    return stale
