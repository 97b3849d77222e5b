"""The reward-check task, served by the reward worker (workers/reward_app.py) on the `rewards` queue."""

from typing import Any

from celery import shared_task

from app.core.queue import REWARD_CHECK_TASK
from workers.reward_checks import run_reward_check


# Results kept (the API waits for them); early acks: a check lost with its worker is simply retried by
# the caller after the 503, and must not be run again later for nobody.
@shared_task(name=REWARD_CHECK_TASK, ignore_result=False, acks_late=False, time_limit=600)
def check_reward(message: dict[str, Any]) -> dict[str, Any]:
    return run_reward_check(message)
