"""Job lifecycle on the API side: create (insert -> commit -> enqueue) and cancel. Owns its commits."""

import uuid

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import ProblemError
from app.core.logs import bind_log_context
from app.core.queue import JobQueue, enqueue_or_undo
from app.crud.jobs import count_jobs
from app.models import Job, JobEvent, JobRewardUse, Tenant
from app.models.base import utcnow
from app.schemas.job import TERMINAL_STATUSES, JobCreate, JobStatus
from app.schemas.resources import ResourcesSpec
from app.services.model_checks import check_prompts_encodable
from app.services.rewards import resolve_references
from app.services.routing import waiting_message
from app.services.spec_checks import check_spec
from app.services.transitions import transition


def check_queue_quota(*, session: Session, tenant: Tenant, retry_after_s: int) -> None:
    queued = count_jobs(session=session, tenant_id=tenant.id, statuses={JobStatus.queued})
    if queued >= tenant.max_queued_jobs:
        raise ProblemError(
            429,
            "quota_exceeded",
            f"{queued} jobs are already queued, the limit for this tenant is "
            f"{tenant.max_queued_jobs}; retry when some have started",
            headers={"Retry-After": str(retry_after_s)},
        )


def pin_reward_references(
    *, session: Session, tenant: Tenant, job_in: JobCreate
) -> tuple[JobCreate, list[tuple[uuid.UUID, int]]]:
    """The spec with every reward reference pinned to a version (a running job keeps the version it started with)."""
    rewards, uses = resolve_references(session=session, tenant_id=tenant.id, rewards=job_in.rewards, param="rewards")
    update: dict[str, object] = {"rewards": rewards}
    if job_in.eval is not None and job_in.eval.rewards:
        eval_rewards, eval_uses = resolve_references(
            session=session, tenant_id=tenant.id, rewards=job_in.eval.rewards, param="eval.rewards"
        )
        update["eval"] = job_in.eval.model_copy(update={"rewards": eval_rewards})
        uses += eval_uses
    return job_in.model_copy(update=update), sorted(set(uses))


def create_job(*, session: Session, tenant: Tenant, job_in: JobCreate, settings: Settings, queue: JobQueue) -> Job:
    job_in, reward_uses = pin_reward_references(session=session, tenant=tenant, job_in=job_in)
    check_spec(job_in, settings, session=session, tenant_id=tenant.id)
    check_prompts_encodable(job_in)
    check_queue_quota(session=session, tenant=tenant, retry_after_s=settings.quota_retry_after_s)
    job = Job(
        tenant_id=tenant.id,
        name=job_in.name,
        spec=job_in.model_dump(mode="json"),
        status=JobStatus.queued,
        total_steps=job_in.grpo.max_steps,
        current_step=0,
        cancel_requested=False,
        latest_metrics={},
        alerts=[],
        train_seconds=0.0,
        attempts=0,
    )
    session.add(job)
    session.flush()
    session.add_all(
        JobRewardUse(job_id=job.id, reward_id=reward_id, version=version) for reward_id, version in reward_uses
    )
    session.add(JobEvent(job_id=job.id, type="status", message="job queued", data={"status": "queued"}))
    if job_in.resources != ResourcesSpec():  # say what the job waits for (a kind of worker, several devices)
        message = waiting_message(job_in.resources, settings)
        session.add(JobEvent(job_id=job.id, type="waiting", message=message, data=job_in.resources.model_dump()))
    session.commit()
    bind_log_context(job_id=str(job.id))
    enqueue_or_undo(
        lambda: queue.enqueue_training(job.id),
        what="job",
        session=session,
        undo=lambda: transition(
            session,
            job.id,
            from_={JobStatus.queued},
            to=JobStatus.failed,
            finished_at=utcnow(),
            error={"code": "enqueue_failed", "message": "the job queue was unavailable at submit", "param": None},
        ),
    )
    session.refresh(job)
    return job


def cancel_job(*, session: Session, job: Job) -> Job:
    """Queued and paused jobs are cancelled at once; running (and pausing) ones stop at the next step boundary."""
    if job.status in TERMINAL_STATUSES:
        raise ProblemError(409, "job_finished", f"the job is already {job.status.value}")
    paused = job.status == JobStatus.paused  # no worker holds a paused job
    cancelled_now = transition(
        session,
        job.id,
        from_={JobStatus.paused} if paused else {JobStatus.queued},
        to=JobStatus.cancelled,
        message="job cancelled while paused" if paused else "job cancelled before it started",
        cancel_requested=True,
        finished_at=utcnow(),
    )
    if not cancelled_now and not job.cancel_requested:
        job.cancel_requested = True
        session.add(
            JobEvent(
                job_id=job.id,
                type="cancel_requested",
                message="cancel requested; stopping at the next step boundary",
                data={},
            )
        )
    session.commit()
    session.refresh(job)
    return job
