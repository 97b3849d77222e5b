"""How the API hands work to the workers. Only ids travel; the task re-reads the row."""

import uuid
from collections.abc import Callable
from typing import Protocol

from celery import Celery

from app.core.errors import ProblemError

TRAIN_TASK = "workers.tasks.run_grpo_job"
EVAL_TASK = "workers.tasks.run_evaluation"
MERGE_TASK = "workers.tasks.merge_checkpoint"


class JobQueue(Protocol):
    def enqueue_training(self, job_id: uuid.UUID) -> None: ...

    def enqueue_evaluation(self, evaluation_id: uuid.UUID) -> None: ...

    def enqueue_merge(self, job_id: uuid.UUID, step: int) -> None: ...


class CeleryJobQueue:
    """Sends by task name, so the API never imports the worker's training code."""

    def __init__(self, celery: Celery, route: Callable[[uuid.UUID], str] | None = None) -> None:
        self._celery = celery
        self._route = route  # job id -> queue of the worker class that fits it (app/services/routing.py)

    def enqueue_training(self, job_id: uuid.UUID) -> None:
        queue = self._route(job_id) if self._route is not None else None
        self._celery.send_task(TRAIN_TASK, args=[str(job_id)], queue=queue)

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
