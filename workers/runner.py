"""Run one service job end to end: claim -> inputs -> engine.train -> finish. Celery-free, so tests call it."""

import contextlib
import logging
import traceback
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.logs import new_log_context, reset_log_context
from app.core.queue import JobQueue
from app.core.storage import ObjectStore, make_store
from app.models import Job
from app.schemas.job import JobSpec, JobStatus
from app.schemas.reward_resource import concrete_rewards
from app.services import artifacts, handoff, runs
from workers.drain import WorkerDraining, flags_for_this_task
from workers.engine import train
from workers.engine.model import model_path
from workers.fleet_check import fleet_check
from workers.inputs import load_rows, prepare_init_weights, prepare_resume
from workers.launch import RankCrashed, launch_job, raise_outcome
from workers.reporting import MONITORED, DatabaseSink, Heartbeat, JobCancelled, JobLost
from workers.rewards import RewardMonitor, build_reward_fn
from workers.spec import engine_config_from_spec, token_counter
from workers.watchdog import release_waiting_jobs

logger = logging.getLogger(__name__)


def job_work_dir(settings: Settings, job_id: uuid.UUID) -> Path:
    return settings.work_dir / str(job_id)


def error_body(exc: BaseException) -> dict[str, Any]:
    """A failed job's error: a stable code, a message a person can act on, and the spec field if known."""
    code = getattr(exc, "code", None) or "training_failed"
    message = str(exc) or type(exc).__name__
    return {"code": code, "message": f"{type(exc).__name__}: {message}"[:2000], "param": getattr(exc, "param", None)}


def _train(
    job_id: uuid.UUID,
    tenant_id: uuid.UUID,
    spec: JobSpec,
    *,
    settings: Settings,
    store: ObjectStore,
    sessions: sessionmaker[Session],
    worker_id: str,
) -> None:
    work_dir = job_work_dir(settings, job_id)
    with sessions() as session:
        rows = load_rows(spec.dataset, store=store, session=session, tenant_id=tenant_id, param="dataset")
        eval_rows = (
            load_rows(spec.eval.dataset, store=store, session=session, tenant_id=tenant_id, param="eval.dataset")
            if spec.eval
            else None
        )
    config = engine_config_from_spec(spec, data_dir=settings.data_dir)
    resume_from = prepare_resume(work_dir=work_dir, store=store, sessions=sessions, job_id=job_id)
    if resume_from is not None:
        with sessions() as session:
            runs.add_event(
                session=session,
                job_id=job_id,
                type_="resumed",
                message=f"resuming from {resume_from.name}",
                data={"checkpoint": resume_from.name},
            )
    elif spec.init_from is not None:
        with sessions() as session:
            config.model_source = str(
                prepare_init_weights(
                    spec.init_from, work_dir=work_dir, store=store, session=session, tenant_id=tenant_id
                )
            )
    if spec.resources.distributed:  # one process per device under torchrun; this worker stays the owner
        model_path(config)  # build or fetch the model once here, not in every rank at the same time
        outcome = launch_job(
            job_id, spec, settings, worker_id=worker_id, resume_from=resume_from,
            model_source=config.model_source if spec.init_from is not None and resume_from is None else None,
        )  # fmt: skip
        raise_outcome(outcome)
        return
    monitor = rebuilt_monitor(spec, sessions, job_id, resume_from)
    drain_flags = flags_for_this_task(settings.data_dir)
    sink = DatabaseSink(sessions, store, job_id, worker_id, spec, monitor, drain_flags=drain_flags)
    group_size = spec.grpo.group_size
    eval_rewards = concrete_rewards(spec.eval.rewards) if spec.eval and spec.eval.rewards else None
    tokens = token_counter(config)  # for length rewards counted in tokens
    with (
        build_reward_fn(concrete_rewards(spec.rewards), group_size=group_size, count_tokens=tokens) as reward_fn,
        build_reward_fn(eval_rewards, count_tokens=tokens) if eval_rewards else contextlib.nullcontext() as eval_fn,
    ):
        train(
            config,
            rows,
            reward_fn,
            sink,
            work_dir=work_dir,
            resume_from=resume_from,
            eval_rows=eval_rows,
            eval_reward_fn=eval_fn,
        )


def rebuilt_monitor(
    spec: JobSpec, sessions: sessionmaker[Session], job_id: uuid.UUID, resume_from: Path | None
) -> RewardMonitor:
    """A fresh monitor, fed the history up to the resume point so its windows survive a restart."""
    monitor = RewardMonitor(spec.safeguards, MONITORED)
    if resume_from is None:
        return monitor
    resumed_step = int(resume_from.name.rsplit("-", 1)[1])
    with sessions() as session:
        history = runs.metric_history(session=session, job_id=job_id, up_to_step=resumed_step)
        evaluations = artifacts.scheduled_evaluations(session=session, job_id=job_id, up_to_step=resumed_step)
    for step, metrics in history:
        monitor.observe_step(step, metrics)  # alerts of these steps were recorded before the restart
    for step, metrics in evaluations:
        monitor.observe_eval(step, metrics)
    return monitor


def run_job(
    *,
    job_id: uuid.UUID,
    settings: Settings,
    session_factory: sessionmaker[Session],
    worker_id: str,
    queue: JobQueue | None = None,
) -> None:
    """Claim and train one job. With `queue`, a job that ends hands its tenant's slot to a waiting job."""
    token = new_log_context(job_id=str(job_id))
    try:
        handed_back = _run_claimed(
            job_id=job_id, settings=settings, session_factory=session_factory, worker_id=worker_id
        )
        if handed_back and queue is not None:
            queue.enqueue_training(job_id)
    finally:
        reset_log_context(token)
    if queue is not None:
        with session_factory() as session:
            tenant_id = session.scalar(select(Job.tenant_id).where(Job.id == job_id))
        if tenant_id is not None:
            release_waiting_jobs(session_factory=session_factory, queue=queue, tenant_id=tenant_id)


def _run_claimed(
    *, job_id: uuid.UUID, settings: Settings, session_factory: sessionmaker[Session], worker_id: str
) -> bool:
    """True when the job went back to the queue (drain, a crashed rank): the caller enqueues it again."""
    if not fleet_check(session_factory=session_factory, job_id=job_id, settings=settings, worker_id=worker_id):
        return False
    with session_factory() as session:
        job = runs.claim_job(
            session=session, job_id=job_id, worker_id=worker_id, max_attempts=settings.max_job_attempts
        )
    if job is None:
        logger.info("job %s not claimed: not queued (a duplicate delivery, cancelled) or no free slot", job_id)
        return False
    outcome, error, message = JobStatus.succeeded, None, "job succeeded"

    def beat() -> None:
        with session_factory() as session:
            runs.beat(session=session, job_id=job_id, worker_id=worker_id)

    with Heartbeat(beat, settings.heartbeat_interval_s, name=f"job-{job_id}"):
        try:
            _train(
                job_id,
                job.tenant_id,
                JobSpec.model_validate(job.spec),
                settings=settings,
                store=make_store(settings),
                sessions=session_factory,
                worker_id=worker_id,
            )
        except JobCancelled as exc:
            outcome, message = JobStatus.cancelled, str(exc)
        except JobLost:
            logger.warning("job %s was taken over by another worker; stopping", job_id)
            return False
        except (WorkerDraining, RankCrashed) as exc:
            logger.warning("job %s handed back to the queue: %s", job_id, exc)
            with session_factory() as session:
                return handoff.requeue_own_job(
                    session=session, job_id=job_id, worker_id=worker_id, reason=str(exc),
                    count_attempt=isinstance(exc, RankCrashed),
                )  # fmt: skip
        except Exception as exc:
            logger.error("job %s failed:\n%s", job_id, traceback.format_exc())
            outcome, error, message = JobStatus.failed, error_body(exc), f"job failed: {exc}"[:500]
    with session_factory() as session:
        runs.finish_job(session=session, job_id=job_id, worker_id=worker_id, to=outcome, error=error, message=message)
    return False
