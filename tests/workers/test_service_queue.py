"""Evaluations, merges and preflights go to the `service` queue, served by a worker of their own, so they never
wait behind a training job (issue 15); a service worker never takes training jobs."""

import types
import uuid

from app.core.celery import SERVICE_QUEUE, TRAINING_QUEUE
from app.core.queue import CeleryJobQueue
from workers import tasks


class RecordingCelery:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None]] = []

    def send_task(self, name: str, args: list[object], queue: str | None = None) -> None:
        self.sent.append((name.rsplit(".", 1)[1], queue))


def test_short_tasks_go_to_the_service_queue_and_training_to_its_own():
    celery = RecordingCelery()
    queue = CeleryJobQueue(celery, route=lambda _job_id: TRAINING_QUEUE)  # type: ignore[arg-type]
    queue.enqueue_training(uuid.uuid4())
    queue.enqueue_evaluation(uuid.uuid4())
    queue.enqueue_merge(uuid.uuid4(), 5)
    queue.enqueue_preflight(uuid.uuid4())
    assert celery.sent == [
        ("run_grpo_job", TRAINING_QUEUE),
        ("run_evaluation", SERVICE_QUEUE),
        ("merge_checkpoint", SERVICE_QUEUE),
        ("run_preflight", SERVICE_QUEUE),
    ]


def worker_started_with(consume_from: dict[str, object] | None) -> list[str]:
    added: list[str] = []
    queues = types.SimpleNamespace(consume_from=consume_from, select_add=added.append)
    instance = types.SimpleNamespace(app=types.SimpleNamespace(amqp=types.SimpleNamespace(queues=queues)))
    tasks._consume_class_queues(instance)
    return added


def test_a_service_worker_takes_no_training_queue():
    assert worker_started_with({SERVICE_QUEUE: object()}) == []
    assert TRAINING_QUEUE in worker_started_with({TRAINING_QUEUE: object()})
    assert TRAINING_QUEUE in worker_started_with(None)  # no --queues: the default, training


def test_webhooks_are_sent_by_the_service_worker_only():
    """Two senders (the training and the service worker) could deliver an event twice: one kind sends."""
    assert tasks.serves_queue({SERVICE_QUEUE: object()}, SERVICE_QUEUE)
    assert not tasks.serves_queue({TRAINING_QUEUE: object()}, SERVICE_QUEUE)
    assert tasks.serves_queue(None, SERVICE_QUEUE)  # a worker without --queues serves every queue
