"""ORM rows -> public schemas, for the values that are derived rather than stored."""

from app.models import Job
from app.schemas.job import JobError, JobProgress, JobPublic, JobStatus
from app.services.budgets import job_usage

TOKENS_PER_S = "throughput/tokens_per_s"  # the engine's step metric (workers/engine/metrics.py)


def job_public(job: Job) -> JobPublic:
    done, total = job.current_step, job.total_steps
    eta = None
    # Only a running (or pausing) job has time left: a paused, cancelled or failed one has no end in sight.
    if job.status in (JobStatus.running, JobStatus.pausing) and 0 < done < total and job.train_seconds > 0:
        eta = job.train_seconds / done * (total - done)
    return JobPublic(
        id=job.id,
        name=job.name,
        status=job.status,
        progress=JobProgress(
            step=done,
            total_steps=total,
            fraction=done / total if total else 0.0,
            eta_seconds=eta,
            tokens_per_s=(job.latest_metrics or {}).get(TOKENS_PER_S),
        ),
        cancel_requested=job.cancel_requested,
        error=JobError.model_validate(job.error) if job.error else None,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        spec=job.spec,
        latest_metrics=job.latest_metrics or {},
        alerts=job.alerts or [],
        usage=job_usage(job),
    )
