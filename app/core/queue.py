"""How the API hands work to the workers. Only ids travel; the task re-reads the row."""

import logging
import uuid
from collections.abc import Callable
from typing import Protocol

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from sqlalchemy.orm import Session

from app.core.celery import REWARD_QUEUE, SERVICE_QUEUE
from app.core.errors import ProblemError
from app.schemas.reward_check import RewardCheckReply, RewardCheckRequest

logger = logging.getLogger(__name__)

TRAIN_TASK = "workers.tasks.run_grpo_job"
EVAL_TASK = "workers.tasks.run_evaluation"
MERGE_TASK = "workers.tasks.merge_checkpoint"
REWARD_CHECK_TASK = "workers.reward_tasks.check_reward"
RETRY_AFTER_S = 30

logger = logging.getLogger(__name__)
PREFLIGHT_TASK = "workers.tasks.run_preflight"


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
        self._celery.send_task(EVAL_TASK, args=[str(evaluation_id)], queue=SERVICE_QUEUE)

    def enqueue_merge(self, job_id: uuid.UUID, step: int) -> None:
        self._celery.send_task(MERGE_TASK, args=[str(job_id), step], queue=SERVICE_QUEUE)

    def enqueue_preflight(self, preflight_id: uuid.UUID) -> None:
        self._celery.send_task(PREFLIGHT_TASK, args=[str(preflight_id)], queue=SERVICE_QUEUE)


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


class RewardRunner(Protocol):
    """Runs a reward check on a reward worker and returns its reply; raises a 503 ProblemError when no
    worker answers in time."""

    def run(self, request: RewardCheckRequest) -> RewardCheckReply: ...


class CeleryRewardRunner:
    """Sends the check to the `rewards` queue by task name and waits, at most `timeout_s`, for the reply."""

    def __init__(self, celery: Celery, timeout_s: float) -> None:
        self._celery, self.timeout_s = celery, timeout_s

    def run(self, request: RewardCheckRequest) -> RewardCheckReply:
        try:
            # expires: a check nobody picked up in time is dropped, not run after the caller gave up.
            result = self._celery.send_task(
                REWARD_CHECK_TASK, args=[request.model_dump(mode="json")], queue=REWARD_QUEUE, expires=self.timeout_s
            )
        except Exception as exc:  # noqa: BLE001 - kombu/redis/sqlalchemy errors: the broker is unreachable
            logger.error("could not send a reward check: %s", exc)
            raise worker_unavailable("the queue is unavailable") from exc
        try:
            reply = result.get(timeout=self.timeout_s, interval=0.05)
        except CeleryTimeout as exc:
            logger.error("no reward worker answered within %g s (is one serving %r?)", self.timeout_s, REWARD_QUEUE)
            raise worker_unavailable(f"no reward worker answered within {self.timeout_s:g} s") from exc
        except Exception as exc:  # noqa: BLE001 - the task itself failed or the result backend is down
            logger.error("reward check failed on the worker: %s", exc)
            raise worker_unavailable("the reward worker failed to answer") from exc
        finally:
            _forget(result)
        return RewardCheckReply.model_validate(reply)


def _forget(result: object) -> None:
    try:
        result.forget()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a result left behind expires on its own
        logger.debug("could not forget a reward check result", exc_info=True)


def worker_unavailable(why: str) -> ProblemError:
    """The 503 for a reward check no worker answered: an operator problem, never the caller's reward."""
    return ProblemError(
        503,
        "worker_unavailable",
        f"Rewards cannot be tested right now: {why}. Retry later.",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
