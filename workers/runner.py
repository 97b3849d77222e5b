"""Run one service job end to end: claim -> inputs -> engine.train -> finish. Celery-free, so tests call it."""

import logging
import traceback
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.logs import new_log_context, reset_log_context
from app.core.queue import JobQueue
from app.core.sanitize import safe_text
from app.core.storage import ObjectStore, make_store
from app.models import Job
from app.schemas.errors import JobErrorCode
from app.schemas.job import DatasetSpec, JobSpec, JobStatus
from app.schemas.job_error import MAX_MESSAGE_CHARS, error_from_exception
from app.schemas.status import EventType
from app.services import artifacts, handoff, pause, runs
from workers.claiming import claim_or_take_over
from workers.contract import JobFailure
from workers.drain import WorkerDraining, flags_for_this_task
from workers.engine import train
from workers.engine.checkpoint import is_out_of_space
from workers.engine.model import model_path
from workers.fleet_check import fleet_check
from workers.inputs import load_rows, prepare_init_weights, prepare_resume
from workers.judges import judge_resolver
from workers.launch import RankCrashed, launch_job, raise_outcome
from workers.manifest import base_manifest
from workers.model_preflight import check_model_reachable
from workers.reporting import MONITORED, DatabaseSink, Heartbeat, JobCancelled, JobLost, JobPaused
from workers.rewards import RewardMonitor
from workers.spec import RunInputs, run_inputs
from workers.watchdog import release_waiting_jobs

logger = logging.getLogger(__name__)


def job_work_dir(settings: Settings, job_id: uuid.UUID) -> Path:
    return settings.work_dir / str(job_id)


def error_body(exc: BaseException) -> dict[str, Any]:
    """A failed job's error: a code from the closed list, a message a person can act on, the spec field
    if known; never driver text or SQL (app/schemas/job_error.py)."""
    if isinstance(exc, ValidationError):  # pydantic's str() has a URL per error and its own layout
        problems = [f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in exc.errors()[:5]]
        message = safe_text("invalid spec: " + "; ".join(problems), MAX_MESSAGE_CHARS)
        return {"code": JobErrorCode.invalid_input.value, "message": message, "param": None}
    if not isinstance(exc, JobFailure) and is_out_of_space(exc):  # ENOSPC outside a checkpoint write
        message = safe_text(f"no space left on the device: {exc}", MAX_MESSAGE_CHARS)
        return {"code": JobErrorCode.storage_full.value, "message": message, "param": None}
    return error_from_exception(exc)


def service_inputs(
    spec: JobSpec, *, settings: Settings, store: ObjectStore, sessions: sessionmaker[Session], tenant_id: uuid.UUID
) -> RunInputs:
    """run_inputs() with the service's row loader: inline rows, or the tenant's stored dataset."""

    def load(dataset: DatasetSpec, param: str) -> list[dict[str, Any]]:
        with sessions() as session:
            return load_rows(dataset, store=store, session=session, tenant_id=tenant_id, param=param)

    return run_inputs(spec, data_dir=settings.data_dir, load_rows=load)


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
    inputs = service_inputs(spec, settings=settings, store=store, sessions=sessions, tenant_id=tenant_id)
    resume_from = prepare_resume(work_dir=work_dir, store=store, sessions=sessions, job_id=job_id)
    if resume_from is not None:
        with sessions() as session:
            runs.add_event(
                session=session,
                job_id=job_id,
                type_=EventType.resumed,
                message=f"resuming from {resume_from.name}",
                data={"checkpoint": resume_from.name},
            )
    elif spec.init_from is not None:
        with sessions() as session:
            # The token counter reads model_source when first used, so it sees this too.
            inputs.config.model_source = str(
                prepare_init_weights(
                    spec.init_from, work_dir=work_dir, store=store, session=session, tenant_id=tenant_id
                )
            )
    if spec.resources.distributed:  # one process per device under torchrun; this worker stays the owner
        model_path(inputs.config)  # build or fetch the model once here, not in every rank at the same time
        init_weights = inputs.config.model_source if spec.init_from is not None and resume_from is None else None
        outcome = launch_job(
            job_id, spec, settings, worker_id=worker_id, resume_from=resume_from, model_source=init_weights
        )
        raise_outcome(outcome)
        return
    with sessions() as session:
        source = resume_from.name if resume_from is not None else inputs.config.model_source
        runs.add_event(
            session=session,
            job_id=job_id,
            type_=EventType.model_loading,
            message=f"loading model {source}",
            data={"source": source, "revision": inputs.config.model_revision},
        )
    if resume_from is None:
        # seconds, not the hub's retries
        check_model_reachable(inputs.config.model_source, inputs.config.model_revision)
    monitor = rebuilt_monitor(spec, sessions, job_id, resume_from)
    manifest = base_manifest(spec, inputs.rows, inputs.config)
    drain_flags = flags_for_this_task(settings.data_dir)
    sink = DatabaseSink(sessions, store, job_id, worker_id, spec, monitor, manifest=manifest, drain_flags=drain_flags)
    judges = judge_resolver(settings, sessions, tenant_id)  # for judge rewards (workers/judges.py)
    with inputs.reward_fns(judges) as (reward_fn, eval_fn):
        train(
            inputs.config,
            inputs.rows,
            reward_fn,
            sink,
            work_dir=work_dir,
            resume_from=resume_from,
            eval_rows=inputs.eval_rows,
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
    job = claim_or_take_over(session_factory=session_factory, job_id=job_id, worker_id=worker_id, settings=settings)
    if job is None:
        logger.info("job %s not claimed: a duplicate delivery, cancelled, or no free slot", job_id)
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
        except JobPaused as exc:  # its step is checkpointed: let go of the job (app/services/pause.py)
            with session_factory() as session:
                pause.settle_paused(
                    session=session,
                    job_id=job_id,
                    worker_id=worker_id,
                    reason=exc.reason,
                    message=str(exc),
                    data=exc.data,
                )
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
            error = error_body(exc)
            outcome, message = JobStatus.failed, f"job failed: {error['message']}"[:500]
    with session_factory() as session:
        runs.finish_job(session=session, job_id=job_id, worker_id=worker_id, to=outcome, error=error, message=message)
    return False
