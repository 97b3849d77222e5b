"""Closed sets besides the job status (app/schemas/job.py::JobStatus): evaluations, merges, events.

Each is stored with a database CHECK constraint (migration 9c4e1f7a2b60) and, for the statuses, changed
only through app/services/transitions.py.
"""

from enum import StrEnum


class EvaluationStatus(StrEnum):
    """queued -> running -> succeeded | failed (a scheduled evaluation is recorded succeeded at once)."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class EvaluationTrigger(StrEnum):
    scheduled = "scheduled"  # eval.every during training
    on_demand = "on_demand"  # POST /v1/jobs/{id}/evaluations


class MergeStatus(StrEnum):
    """A LoRA checkpoint's merged download: (none) -> queued -> running -> succeeded | failed; a failed or
    lost merge can be requested again."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class EventType(StrEnum):
    """What a job event reports (GET /v1/jobs/{id}/events, `type`)."""

    status = "status"  # the job's status changed; data.status is the new one
    metrics = "metrics"  # a training step's metrics; data.step, data.values
    checkpoint = "checkpoint"  # a complete checkpoint was stored
    evaluation = "evaluation"  # a scheduled or on-demand evaluation finished
    merge = "merge"  # a LoRA checkpoint's merge finished (data.merge_status)
    alert = "alert"  # a reward-hacking safeguard fired (data.code)
    resumed = "resumed"  # a new attempt resumed from a checkpoint
    cancel_requested = "cancel_requested"  # the user asked to cancel; the worker stops at the next step
    waiting = "waiting"  # the job waits for a free slot of its tenant's running-job limit
    model_loading = "model_loading"  # the worker starts loading the model (data.source)
    model_loaded = "model_loaded"  # the model is loaded (data.seconds)


class EventLevel(StrEnum):
    info = "info"
    warning = "warning"
    error = "error"
