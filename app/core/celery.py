"""The Celery application's configuration, in one block, for both sides of the broker.

The API builds a Celery client from it to send tasks by name (it never imports worker code); the
worker processes build theirs from it too and add the task modules they serve (workers/celery_app.py
for training, evaluations and merges; workers/reward_app.py for reward tests).

Training jobs are long and expensive, so: late acks (a message is only gone once its job ended),
reject on worker loss, one message prefetched at a time, one job per child process (model memory
goes back to the OS), JSON only. Lost workers are also caught by the database heartbeat
(workers/watchdog.py), which matters on brokers that cannot redeliver (the SQLite transport).

Reward tests (POST /v1/rewards:test, /v1/rewards/{id}/test, the creation dry run) are short calls
the API waits for: they go to their own queue, served by their own worker process, so no training
job can hold them up, and their answers come back through the result backend.
"""

from pathlib import PurePosixPath

from celery import Celery

from app.core.config import Settings

WEEK_S = 7 * 24 * 3600
TRAINING_QUEUE = "grpo"
# Evaluations, merges and preflights: minutes at most, served by a worker of their own (`./run.sh
# service-worker`), so they never wait behind a training job that holds the training worker for hours.
SERVICE_QUEUE = "service"
REWARD_QUEUE = "rewards"
EMBEDDED_POLL_S = 0.1  # how often workers poll the SQLite broker (kombu's default is 1 s: too slow for a test call)


def result_backend_url(broker_url: str) -> str:
    """Where task results go: Redis for a Redis broker, a SQLite file next to an embedded broker's,
    the same database for another SQLAlchemy broker."""
    if broker_url.startswith(("redis://", "rediss://")):
        return broker_url
    if broker_url.startswith("sqla+sqlite:///"):
        path = PurePosixPath(broker_url.removeprefix("sqla+sqlite:///"))
        return f"db+sqlite:///{path.with_name(path.stem + '-results.db')}"
    if broker_url.startswith("sqla+"):
        return "db+" + broker_url.removeprefix("sqla+")
    return "rpc://"


def create_celery(config: Settings, include: list[str] | None = None) -> Celery:
    celery = Celery("grpo", broker=config.broker_url, backend=result_backend_url(config.broker_url), include=include)
    transport_options: dict[str, object] = {}
    if config.broker_url.startswith(("redis://", "rediss://")):
        # Redis redelivers an unacked message after this long: it must exceed the longest job,
        # or a healthy job would be started twice (the claim step would refuse the second copy).
        transport_options = {"visibility_timeout": WEEK_S + 3600}
    if config.broker_url.startswith("sqla+"):
        # This transport hands every transport option to create_engine (a polling_interval there is a
        # TypeError), so its poll period can only be set on the transport class.
        from kombu.transport.sqlalchemy import Transport

        Transport.polling_interval = EMBEDDED_POLL_S
    celery.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,  # only the reward-test task keeps its result (the API waits for it)
        result_expires=3600,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # How long the pool waits for the result of a killed child before calling it lost and putting the
        # message back (default 10 s). Training tasks publish no result, so waiting only delays the recovery.
        worker_lost_wait=1.0,
        task_time_limit=WEEK_S,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options,
        task_default_queue=TRAINING_QUEUE,
    )
    return celery
