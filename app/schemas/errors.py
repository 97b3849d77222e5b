"""The closed list of job (and evaluation) error codes: `error.code` of a failed job is always one of these.

Defined once here and shown in the OpenAPI document (JobError.code); the workers' failures
(workers/contract.py::JobFailure subclasses) carry one of these values, checked by a test.
"""

from enum import StrEnum


class JobErrorCode(StrEnum):
    """Why a job (or an evaluation) failed. Anything not listed is `training_failed`."""

    training_failed = "training_failed"  # an unexpected error in training; the message says which
    internal_error = "internal_error"  # a fault of the service itself, not of the job's spec or data
    invalid_input = "invalid_input"  # the dataset or checkpoint the spec names is gone or unusable
    model_load_failed = "model_load_failed"  # model.source cannot be loaded (missing, private, broken)
    storage_full = "storage_full"  # no space left to write a checkpoint; the message names the path
    reward_error = "reward_error"  # a reward failed on more completions than its max_error_rate allows
    invalid_reward = "invalid_reward"  # a reward spec cannot be built on the worker
    reward_program_error = "reward_program_error"  # a python reward failed to load (import error, no `reward`)
    sandbox_unavailable = "sandbox_unavailable"  # user code could not be isolated; nothing ran unsandboxed
    safeguard_stop = "safeguard_stop"  # a reward-hacking alert stopped the job (safeguards.on_alert='stop')
    worker_lost = "worker_lost"  # the worker died (no heartbeat) and the job could not be resumed
    too_many_attempts = "too_many_attempts"  # the job lost its worker max_job_attempts times
    enqueue_failed = "enqueue_failed"  # the broker refused the job when it was submitted


JOB_ERROR_CODES_DOC = "; ".join(f"`{code.value}`" for code in JobErrorCode)
