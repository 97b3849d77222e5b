"""The Celery application and every setting in one block.

Training jobs are long and expensive, so: late acks (a message is only gone once its job ended),
reject on worker loss, one message prefetched at a time, one job per child process (model memory
goes back to the OS), JSON only. Lost workers are also caught by the database heartbeat
(workers/watchdog.py), which matters on brokers that cannot redeliver (the SQLite transport).
"""

from celery import Celery
from celery.signals import setup_logging

from app.core.config import Settings, settings
from app.core.logs import configure_logging

WEEK_S = 7 * 24 * 3600


def create_celery(config: Settings) -> Celery:
    celery = Celery("grpo", broker=config.broker_url, include=["workers.tasks"])
    transport_options: dict[str, object] = {}
    if config.broker_url.startswith(("redis://", "rediss://")):
        # Redis redelivers an unacked message after this long: it must exceed the longest job,
        # or a healthy job would be started twice (the claim step would refuse the second copy).
        transport_options = {"visibility_timeout": WEEK_S + 3600}
    celery.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # How long the pool waits for the result of a killed child before calling it lost and putting the
        # message back (default 10 s). Tasks here publish no result, so waiting only delays the recovery.
        worker_lost_wait=1.0,
        task_time_limit=WEEK_S,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options,
        task_default_queue="grpo",
    )
    return celery


celery_app = create_celery(settings)


@setup_logging.connect
def _structured_logs(**_kwargs: object) -> None:
    # Connecting this signal stops Celery from configuring logging itself: the worker's lines are JSON
    # with the job id (set by the runners), like the API's.
    configure_logging(level=settings.log_level, fmt=settings.log_format)
