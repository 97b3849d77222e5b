"""The reward worker's Celery application: reward tests only, on the `rewards` queue.

A process of its own (`celery -A workers.reward_app worker --queues rewards --pool threads`), so a
training job never delays a reward test, and the API process never runs graders or user code. It
imports no training code (no torch): it starts in about a second.
"""

from celery.signals import setup_logging

from app.core.celery import create_celery
from app.core.config import settings
from app.core.logs import configure_logging

reward_app = create_celery(settings, include=["workers.reward_tasks"])


@setup_logging.connect
def _structured_logs(**_kwargs: object) -> None:
    configure_logging(level=settings.log_level, fmt=settings.log_format)
