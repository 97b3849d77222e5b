"""Run one on-demand evaluation of a stored checkpoint. Celery-free, so tests call it directly."""

import logging
import tempfile
import traceback
import uuid
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.logs import bind_log_context
from app.core.storage import make_store
from app.models import Job
from app.schemas.job import EvalSpec
from app.schemas.reward_resource import concrete_rewards
from app.services.artifacts import latest_checkpoint
from app.services.evaluation_runs import beat_evaluation, claim_evaluation, finish_evaluation
from workers.engine import evaluate_checkpoint
from workers.engine.model import load_tokenizer
from workers.inputs import JobInputError, load_rows
from workers.reporting import Heartbeat
from workers.runner import error_body
from workers.spec import LazyTokenCounter, eval_overrides, eval_reward_fn

logger = logging.getLogger(__name__)


def run_evaluation(*, evaluation_id: uuid.UUID, settings: Settings, session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        evaluation = claim_evaluation(session=session, evaluation_id=evaluation_id)
        job = session.get(Job, evaluation.job_id) if evaluation else None
        checkpoint = latest_checkpoint(session=session, job_id=job.id, step=evaluation.step) if job else None
    if evaluation is None or job is None:
        logger.info("evaluation %s is not queued; nothing to do", evaluation_id)
        return
    bind_log_context(job_id=str(job.id))

    def beat() -> None:
        with session_factory() as session:
            beat_evaluation(session=session, evaluation_id=evaluation_id)

    metrics, error = None, None
    with Heartbeat(beat, settings.heartbeat_interval_s, name=f"evaluation-{evaluation_id}"):
        try:
            if checkpoint is None:
                raise JobInputError(f"checkpoint {evaluation.step} was deleted before it could be evaluated", "step")
            spec = EvalSpec.model_validate(evaluation.config)
            store = make_store(settings)
            with session_factory() as session:
                rows = load_rows(spec.dataset, store=store, session=session, tenant_id=job.tenant_id, param="dataset")
            settings.work_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=settings.work_dir) as tmp:
                local = Path(tmp) / "checkpoint"
                store.get_dir(checkpoint.storage_key, local)
                count_tokens = LazyTokenCounter(lambda: load_tokenizer(str(local)))
                with eval_reward_fn(concrete_rewards(spec.rewards or []), count_tokens) as reward_fn:
                    assert reward_fn is not None  # built for any list of rewards, even an empty one
                    report = evaluate_checkpoint(local, rows, reward_fn, overrides=eval_overrides(spec))
            metrics = report.metrics
        except Exception as exc:
            logger.error("evaluation %s failed:\n%s", evaluation_id, traceback.format_exc())
            error = error_body(exc)
    with session_factory() as session:
        finish_evaluation(session=session, evaluation_id=evaluation_id, metrics=metrics, error=error)
