"""Celery tasks: thin adapters from a message (a job id) to workers.runner."""

import logging
import uuid

from celery.signals import celeryd_after_setup, worker_process_init, worker_ready, worker_shutting_down

from app.core.celery import SERVICE_QUEUE, TRAINING_QUEUE
from app.core.config import settings
from app.core.queue import CeleryJobQueue
from app.services.routing import training_route
from workers.celery_app import celery_app
from workers.db import session_factory
from workers.drain import clear_mark, mark_draining
from workers.evaluation_runner import run_evaluation as run_evaluation_now
from workers.fleet import worker_queues
from workers.liveness import new_worker_id
from workers.merge_runner import run_merge
from workers.preflight import run_preflight_request
from workers.runner import run_job
from workers.watchdog import start_watchdog
from workers.webhooks import start_webhook_sender

logger = logging.getLogger(__name__)


def training_queue() -> CeleryJobQueue:
    """Enqueues training jobs onto the queue of the worker class that fits them (app/services/routing.py)."""
    return CeleryJobQueue(celery_app, route=training_route(session_factory(), settings))


@celery_app.task(name="workers.tasks.run_grpo_job")
def run_grpo_job(job_id: str) -> None:
    run_job(
        job_id=uuid.UUID(job_id),
        settings=settings,
        session_factory=session_factory(),
        worker_id=new_worker_id(),
        queue=training_queue(),
    )


@celery_app.task(name="workers.tasks.run_evaluation")
def run_evaluation(evaluation_id: str) -> None:
    run_evaluation_now(evaluation_id=uuid.UUID(evaluation_id), settings=settings, session_factory=session_factory())


@celery_app.task(name="workers.tasks.merge_checkpoint")
def merge_checkpoint(job_id: str, step: int) -> None:
    run_merge(job_id=uuid.UUID(job_id), step=step, settings=settings, session_factory=session_factory())


@celery_app.task(name="workers.tasks.run_preflight", soft_time_limit=settings.preflight_time_limit_s)
def run_preflight(preflight_id: str) -> None:
    run_preflight_request(preflight_id=uuid.UUID(preflight_id), settings=settings, session_factory=session_factory())


@worker_ready.connect
def _start_watchdog(**_kwargs: object) -> None:
    clear_mark(settings.data_dir)  # a mark left by an earlier worker that had this pid
    start_watchdog(session_factory=session_factory(), queue=training_queue(), settings=settings)


@worker_ready.connect
def _start_webhook_sender(**_kwargs: object) -> None:
    # One kind of worker sends webhooks: the service worker (short tasks), where there is one; a worker
    # started without --queues serves every queue and sends them too. Two senders would deliver twice.
    if serves_queue(celery_app.amqp.queues.consume_from, SERVICE_QUEUE):
        start_webhook_sender(session_factory=session_factory(), settings=settings)


def serves_queue(consume_from: dict[str, object] | None, queue: str) -> bool:
    """Whether a worker started with these --queues (None: none given, so every queue) consumes `queue`."""
    return consume_from is None or queue in consume_from


@worker_process_init.connect
def _fresh_engine_in_child(**_kwargs: object) -> None:
    # A forked pool child must not reuse the parent's pooled database connections.
    session_factory.cache_clear()


@worker_shutting_down.connect
def _drain(**_kwargs: object) -> None:
    # Warm shutdown (SIGTERM): the running job checkpoints after its step and goes back to the queue.
    mark_draining(settings.data_dir)


@celeryd_after_setup.connect
def _consume_class_queues(instance: object, **_kwargs: object) -> None:
    # On top of --queues: the queues of the jobs this worker's class can run (workers/fleet.py); only for a
    # training worker (a service worker, --queues service, must never take a training job).
    if not serves_queue(instance.app.amqp.queues.consume_from, TRAINING_QUEUE):  # type: ignore[attr-defined]
        return
    for queue in worker_queues(settings):
        instance.app.amqp.queues.select_add(queue)  # type: ignore[attr-defined]
