"""The closed list of job (and evaluation) error codes: `error.code` of a failed job is always one of these.

Defined once here and shown in the OpenAPI document (JobError.code, with each code's meaning); the
workers' failures (workers/contract.py::JobFailure subclasses) carry one of these values, which a test
checks, and anything else a job dies of is `internal_error` (app/schemas/job_error.py).
"""

from enum import StrEnum


class JobErrorCode(StrEnum):
    """Why a job (or an evaluation) failed."""

    training_failed = "training_failed"
    internal_error = "internal_error"
    invalid_input = "invalid_input"
    model_load_failed = "model_load_failed"
    storage_full = "storage_full"
    reward_error = "reward_error"
    invalid_reward = "invalid_reward"
    reward_program_error = "reward_program_error"
    sandbox_unavailable = "sandbox_unavailable"
    safeguard_stop = "safeguard_stop"
    worker_lost = "worker_lost"
    too_many_attempts = "too_many_attempts"
    enqueue_failed = "enqueue_failed"


MEANINGS: dict[JobErrorCode, str] = {
    JobErrorCode.training_failed: "written by earlier versions for any failure; not written any more",
    JobErrorCode.internal_error: "a fault of the service itself, not of the job's spec or data",
    JobErrorCode.invalid_input: "the dataset or checkpoint the spec names is gone or unusable (param names it)",
    JobErrorCode.model_load_failed: "model.source cannot be loaded (missing, private or broken)",
    JobErrorCode.storage_full: "no space left to write a checkpoint; the message names the path and its free space",
    JobErrorCode.reward_error: "a reward failed on more completions of a step than its max_error_rate allows",
    JobErrorCode.invalid_reward: "a reward spec cannot be built on the worker",
    JobErrorCode.reward_program_error: "a python reward failed to load (an error at import, no `reward`)",
    JobErrorCode.sandbox_unavailable: "user code could not be isolated on the worker; nothing ran unsandboxed",
    JobErrorCode.safeguard_stop: "a reward-hacking alert stopped the job (safeguards.on_alert = 'stop')",
    JobErrorCode.worker_lost: "the worker died (no heartbeat) and the job or evaluation could not be resumed",
    JobErrorCode.too_many_attempts: "the job lost its worker max_job_attempts times",
    JobErrorCode.enqueue_failed: "the broker refused the job or evaluation when it was submitted",
}

JOB_ERROR_CODES_DOC = "; ".join(f"`{code.value}`: {MEANINGS[code]}" for code in JobErrorCode)
