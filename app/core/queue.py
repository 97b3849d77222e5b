"""How the API hands work to the workers. Only ids travel; the task re-reads the row."""

import uuid
from typing import Protocol

from celery import Celery

TRAIN_TASK = "workers.tasks.run_grpo_job"


class JobQueue(Protocol):
    def enqueue_training(self, job_id: uuid.UUID) -> None: ...


class CeleryJobQueue:
    """Sends by task name, so the API never imports the worker's training code."""

    def __init__(self, celery: Celery) -> None:
        self._celery = celery

    def enqueue_training(self, job_id: uuid.UUID) -> None:
        self._celery.send_task(TRAIN_TASK, args=[str(job_id)])
