"""How the API hands work to the workers. Only ids travel; the task re-reads the row."""

import logging
import uuid
from collections.abc import Callable
from typing import Protocol

from celery import Celery
from sqlalchemy.orm import Session

from app.core.errors import ProblemError

TRAIN_TASK = "workers.tasks.run_grpo_job"
EVAL_TASK = "workers.tasks.run_evaluation"
MERGE_TASK = "workers.tasks.merge_checkpoint"

logger = logging.getLogger(__name__)


class JobQueue(Protocol):
    def enqueue_training(self, job_id: uuid.UUID) -> None: ...

    def enqueue_evaluation(self, evaluation_id: uuid.UUID) -> None: ...

    def enqueue_merge(self, job_id: uuid.UUID, step: int) -> None: ...


class CeleryJobQueue:
    """Sends by task name, so the API never imports the worker's training code."""

    def __init__(self, celery: Celery) -> None:
        self._celery = celery

    def enqueue_training(self, job_id: uuid.UUID) -> None:
        self._celery.send_task(TRAIN_TASK, args=[str(job_id)])

    def enqueue_evaluation(self, evaluation_id: uuid.UUID) -> None:
        self._celery.send_task(EVAL_TASK, args=[str(evaluation_id)])

    def enqueue_merge(self, job_id: uuid.UUID, step: int) -> None:
        self._celery.send_task(MERGE_TASK, args=[str(job_id), step])


def queue_unavailable(what: str) -> ProblemError:
    """The 503 for work that could not be handed to the workers (the broker is down)."""
    return ProblemError(
        503,
        "queue_unavailable",
        f"The job queue is unavailable; the {what} was not started. Retry later.",
        headers={"Retry-After": "30"},
    )


def enqueue_or_undo(send: Callable[[], None], *, what: str, undo: Callable[[], None], session: Session) -> None:
    """Hand committed work to the broker (commit, then enqueue the id). If the broker refuses, `undo` puts
    the row in a state nobody waits on (a queued job or evaluation failed, a merge back to where it was),
    that is committed, and the caller gets the 503: never a row that waits for a task that was never sent."""
    try:
        send()
    except Exception as exc:
        logger.exception("could not enqueue the %s", what)
        undo()
        session.commit()
        raise queue_unavailable(what) from exc
