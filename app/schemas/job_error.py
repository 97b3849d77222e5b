"""The closed list of job (and evaluation, merge) error codes, and how a failure becomes one.

A failed job's `error.code` is always one of JobErrorCode (it is an enum in the OpenAPI document).
Exceptions name their code with a `code` attribute; anything else, or a code not on the list (a
database driver's internal code such as SQLAlchemy's "9h9h", say), becomes `internal_error` with a
message that holds no driver text, SQL or traceback: those go to the worker's log only.
"""

import logging
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator

from app.core.sanitize import safe_text

logger = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 2000


class JobErrorCode(StrEnum):
    """Why a job, evaluation or merge failed."""

    invalid_input = "invalid_input"  # the dataset or a referenced input cannot be used (param names it)
    invalid_reward = "invalid_reward"  # a reward spec cannot be built on the worker
    reward_program_error = "reward_program_error"  # a python reward failed to load (import error, no reward())
    reward_error = "reward_error"  # a reward failed on more completions than its max_error_rate allows
    sandbox_unavailable = "sandbox_unavailable"  # the worker cannot isolate user code (an operator problem)
    model_load_failed = "model_load_failed"  # model.source could not be loaded
    safeguard_stop = "safeguard_stop"  # a reward-hacking safeguard stopped the job (on_alert: stop)
    storage_full = "storage_full"  # no space left for a checkpoint
    worker_lost = "worker_lost"  # the worker stopped sending heartbeats
    too_many_attempts = "too_many_attempts"  # the job was started max_job_attempts times without finishing
    enqueue_failed = "enqueue_failed"  # the queue was unavailable when the work was submitted
    training_failed = "training_failed"  # written by earlier versions for any failure; not written any more
    internal_error = "internal_error"  # anything else: details are in the worker's log, under the job id


def _known(code: Any) -> JobErrorCode:
    try:
        return JobErrorCode(code)
    except ValueError:
        return JobErrorCode.internal_error


# For reading stored errors: a row written before the list was closed still renders.
JobErrorCodeField = Annotated[JobErrorCode, BeforeValidator(_known)]


def error_from_exception(exc: BaseException) -> dict[str, Any]:
    """A failure as {code, message, param}: the exception's own code and message when it names a listed
    code, else internal_error with a generic message (the details are logged here)."""
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or _known(code) is JobErrorCode.internal_error:
        logger.error("internal error: %s: %s", type(exc).__name__, safe_text(str(exc), 4000))
        return {
            "code": JobErrorCode.internal_error.value,
            "message": "an internal error stopped the work; the worker's log has the details under this id",
            "param": None,
        }
    message = str(exc) or type(exc).__name__
    param = getattr(exc, "param", None)
    return {
        "code": code,
        "message": safe_text(f"{type(exc).__name__}: {message}", MAX_MESSAGE_CHARS),
        "param": safe_text(param) if isinstance(param, str) else None,
    }
