"""Run one service job end to end: claim -> engine.train -> finish. Celery-free, so tests call it directly."""

import logging
import traceback
import uuid
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.schemas.job import JobSpec, JobStatus
from app.services import runs
from workers.engine import find_latest_checkpoint, train
from workers.reporting import DatabaseSink, Heartbeat, JobCancelled, JobLost
from workers.rewards import build_reward_fn
from workers.spec import engine_config_from_spec

logger = logging.getLogger(__name__)


def job_work_dir(settings: Settings, job_id: uuid.UUID) -> Path:
    return settings.work_dir / str(job_id)


def error_body(exc: BaseException) -> dict[str, str | None]:
    """A failed job's error: a stable code, a message a person can act on, and the spec field if known."""
    code = getattr(exc, "code", None) or "training_failed"
    message = str(exc) or type(exc).__name__
    return {"code": code, "message": f"{type(exc).__name__}: {message}"[:2000], "param": getattr(exc, "param", None)}


def run_job(*, job_id: uuid.UUID, settings: Settings, session_factory: sessionmaker[Session], worker_id: str) -> None:
    with session_factory() as session:
        job = runs.claim_job(
            session=session, job_id=job_id, worker_id=worker_id, max_attempts=settings.max_job_attempts
        )
    if job is None:
        logger.info("job %s is not queued (duplicate delivery or cancelled); nothing to do", job_id)
        return

    work_dir = job_work_dir(settings, job_id)
    resume_from = find_latest_checkpoint(work_dir)
    outcome, error, message = JobStatus.succeeded, None, "job succeeded"
    with Heartbeat(session_factory, job_id, worker_id, settings.heartbeat_interval_s):
        try:
            spec = JobSpec.model_validate(job.spec)
            config = engine_config_from_spec(spec, data_dir=settings.data_dir)
            reward_fn = build_reward_fn(spec.rewards)
            sink = DatabaseSink(session_factory, job_id, worker_id)
            if resume_from is not None:
                with session_factory() as session:
                    runs.add_event(
                        session=session,
                        job_id=job_id,
                        type_="resumed",
                        message=f"resuming from checkpoint {resume_from.name}",
                        data={"checkpoint": str(resume_from)},
                    )
            train(config, spec.dataset.rows, reward_fn, sink, work_dir=work_dir, resume_from=resume_from)
        except JobCancelled as exc:
            outcome, message = JobStatus.cancelled, str(exc)
        except JobLost:
            logger.warning("job %s was taken over by another worker; stopping", job_id)
            return
        except Exception as exc:
            logger.error("job %s failed:\n%s", job_id, traceback.format_exc())
            outcome, error, message = JobStatus.failed, error_body(exc), f"job failed: {exc}"[:500]
    with session_factory() as session:
        runs.finish_job(session=session, job_id=job_id, worker_id=worker_id, to=outcome, error=error, message=message)
