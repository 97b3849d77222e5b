"""Checkpoints and evaluations: store, register, retain. Owns its commits."""

import logging
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.storage import ObjectStore
from app.crud.metrics import upsert
from app.models import Checkpoint, Evaluation, JobEvent
from app.models.base import utcnow

logger = logging.getLogger(__name__)

EVAL_SCORE_METRIC = "eval/accuracy"
# What a plain model download holds: what from_pretrained (or peft) reads, nothing for resuming.
TRAINER_ONLY = ("trainer_state.pt", "trainer_state.json", "COMPLETE", "reference/", "merged/")


def checkpoint_key(job_id: uuid.UUID, step: int) -> str:
    return f"jobs/{job_id}/checkpoints/{step:06d}"


def register_checkpoint(
    *,
    session: Session,
    store: ObjectStore,
    job_id: uuid.UUID,
    step: int,
    local_dir: Path,
    metrics: dict[str, float],
) -> None:
    """Upload first, then insert the row: a listed checkpoint is always complete in storage."""
    key = checkpoint_key(job_id, step)
    store.delete_prefix(f"{key}/merged")  # a step re-run after a resume: an old merge is not of these weights
    size = store.put_dir(key, local_dir)
    row = {
        "id": uuid.uuid4(),
        "job_id": job_id,
        "step": step,
        "storage_key": key,
        "size_bytes": size,
        "is_adapter": (local_dir / "adapter_config.json").exists(),
        "metrics": metrics,
        "created_at": utcnow(),
        "deleted_at": None,
        "merge_status": None,
    }
    upsert(session, Checkpoint, [row], ["job_id", "step"])
    session.add(
        JobEvent(
            job_id=job_id,
            type="checkpoint",
            step=step,
            message=f"checkpoint saved at step {step}",
            data={"step": step, "size_bytes": size},
        )
    )
    session.commit()


def apply_retention(
    *, session: Session, store: ObjectStore, job_id: uuid.UUID, keep_last: int, keep_best: int
) -> list[int]:
    """Delete stored checkpoints beyond the newest `keep_last` and the `keep_best` by eval score."""
    live = list(
        session.scalars(
            select(Checkpoint)
            .where(Checkpoint.job_id == job_id, Checkpoint.deleted_at.is_(None))
            .order_by(Checkpoint.step)
        )
    )
    keep = {c.step for c in live[-keep_last:]}
    scored = sorted((c for c in live if c.eval_score is not None), key=lambda c: (-c.eval_score, -c.step))  # type: ignore[operator]
    keep |= {c.step for c in scored[:keep_best]}
    deleted = []
    for checkpoint in live:
        if checkpoint.step not in keep:
            store.delete_prefix(checkpoint.storage_key)
            checkpoint.deleted_at = utcnow()
            deleted.append(checkpoint.step)
    session.commit()
    return deleted


def latest_checkpoint(*, session: Session, job_id: uuid.UUID, step: int | None = None) -> Checkpoint | None:
    query = select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.deleted_at.is_(None))
    if step is not None:
        query = query.where(Checkpoint.step == step)
    return session.scalar(query.order_by(Checkpoint.step.desc()).limit(1))


def record_scheduled_evaluation(
    *, session: Session, job_id: uuid.UUID, step: int, metrics: dict[str, float], config: dict[str, Any]
) -> None:
    """An evaluation run inside training. Idempotent per step: a resumed run overwrites its own result."""
    existing = session.scalar(
        select(Evaluation).where(
            Evaluation.job_id == job_id, Evaluation.step == step, Evaluation.trigger == "scheduled"
        )
    )
    now = utcnow()
    # created_at is set here, not by the column default at flush, which would come after finished_at.
    evaluation = existing or Evaluation(job_id=job_id, step=step, trigger="scheduled", config=config, created_at=now)
    evaluation.status, evaluation.metrics, evaluation.finished_at = "succeeded", metrics, now
    session.add(evaluation)
    attach_eval_score(session=session, job_id=job_id, step=step, metrics=metrics)
    if existing is None:
        session.add(
            JobEvent(
                job_id=job_id,
                type="evaluation",
                step=step,
                message=f"evaluation at step {step}",
                data={"step": step, "metrics": metrics},
            )
        )
    session.commit()


def attach_eval_score(*, session: Session, job_id: uuid.UUID, step: int, metrics: dict[str, float]) -> None:
    checkpoint = session.scalar(select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.step == step))
    if checkpoint is not None and EVAL_SCORE_METRIC in metrics:
        checkpoint.eval_score = metrics[EVAL_SCORE_METRIC]


def model_files(store: ObjectStore, checkpoint: Checkpoint, variant: str) -> list[tuple[str, int]]:
    """(relative path, size) of the files a download of `variant` ('model', 'full' or 'merged') contains."""
    files = store.list(checkpoint.storage_key)
    if variant == "full":
        return [(name, size) for name, size in files if not name.startswith("merged/")]
    if variant == "merged":
        return [(name, size) for name, size in files if name.startswith("merged/")]
    return [(name, size) for name, size in files if not name.startswith(TRAINER_ONLY)]


def scheduled_evaluations(
    *, session: Session, job_id: uuid.UUID, up_to_step: int
) -> list[tuple[int, dict[str, float]]]:
    query = (
        select(Evaluation.step, Evaluation.metrics)
        .where(Evaluation.job_id == job_id, Evaluation.trigger == "scheduled", Evaluation.step <= up_to_step)
        .order_by(Evaluation.step)
    )
    return [(step, metrics) for step, metrics in session.execute(query)]
