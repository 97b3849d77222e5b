"""Merge one stored LoRA checkpoint into its base model and store the result. Celery-free, so tests call it."""

import logging
import tempfile
import traceback
import uuid
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.storage import make_store
from app.models import Job
from app.schemas.job import JobSpec
from app.services.merges import MERGED_PREFIX, claim_merge, finish_merge
from workers.engine.export import merge_lora_checkpoint
from workers.inputs import prepare_init_weights
from workers.runner import job_work_dir

logger = logging.getLogger(__name__)


def run_merge(*, job_id: uuid.UUID, step: int, settings: Settings, session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        checkpoint = claim_merge(session=session, job_id=job_id, step=step)
        key = checkpoint.storage_key if checkpoint else None
        job = session.get(Job, job_id)
    if key is None or job is None:
        logger.info("checkpoint %s of job %s is gone or merged already; nothing to do", step, job_id)
        return
    error = None
    try:
        store = make_store(settings)
        spec = JobSpec.model_validate(job.spec)
        if spec.init_from is not None:  # the adapters' base is that checkpoint; fetch it if this disk lacks it
            with session_factory() as session:
                prepare_init_weights(
                    spec.init_from,
                    work_dir=job_work_dir(settings, job_id),
                    store=store,
                    session=session,
                    tenant_id=job.tenant_id,
                )
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=settings.work_dir) as tmp:
            adapter = Path(tmp) / "checkpoint"
            store.get_dir(key, adapter)
            merged = merge_lora_checkpoint(adapter, Path(tmp) / MERGED_PREFIX)
            # Stored before the status says 'succeeded', so a download never sees half a model.
            store.put_dir(f"{key}/{MERGED_PREFIX}", merged)
    except Exception as exc:
        logger.error("merge of job %s step %s failed:\n%s", job_id, step, traceback.format_exc())
        error = f"{type(exc).__name__}: {exc}"
    with session_factory() as session:
        finish_merge(session=session, job_id=job_id, step=step, error=error)
