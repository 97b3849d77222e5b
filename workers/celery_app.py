"""The training worker's Celery application: the shared configuration (app/core/celery.py) plus the
training, evaluation and merge tasks. Start it with `--queues grpo`; reward tests have their own
worker (workers/reward_app.py)."""

from celery.signals import setup_logging

from app.core.celery import WEEK_S, create_celery
from app.core.config import settings
from app.core.logs import configure_logging

__all__ = ["WEEK_S", "celery_app", "create_celery"]

celery_app = create_celery(settings, include=["workers.tasks"])


@setup_logging.connect
def _structured_logs(**_kwargs: object) -> None:
    # Connecting this signal stops Celery from configuring logging itself: the worker's lines are JSON
    # with the job id (set by the runners), like the API's.
    configure_logging(level=settings.log_level, fmt=settings.log_format)
