"""Merged downloads of LoRA checkpoints: request (API side), claim and finish (worker side).

The merge itself is training code (peft), so it runs on a worker (workers/merge_runner.py); its
output is stored under '<checkpoint key>/merged/' and served by `?variant=merged`. Merging is
idempotent: a request for a checkpoint that is not merged ('succeeded') always enqueues a merge, so a merge lost
with its worker is simply requested again, and a duplicate rewrites the same files.
"""

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import ProblemError
from app.core.queue import JobQueue, enqueue_or_undo
from app.models import Checkpoint, JobEvent
from app.schemas.status import EventLevel, EventType, MergeStatus
from app.services.artifacts import latest_checkpoint
from app.services.transitions import transition_merge

MERGED_PREFIX = "merged"


def request_merge(*, session: Session, job_id: uuid.UUID, step: int, queue: JobQueue) -> Checkpoint | None:
    """Queue a merge of checkpoint `step`; None when there is no such checkpoint. 409 for a full model."""
    checkpoint = latest_checkpoint(session=session, job_id=job_id, step=step)
    if checkpoint is None:
        return None
    if not checkpoint.is_adapter:
        raise ProblemError(
            409, "not_an_adapter", f"checkpoint {step} is a full model already: download it with ?variant=model"
        )
    if checkpoint.merge_status == MergeStatus.succeeded:
        return checkpoint
    previous = checkpoint.merge_status
    if previous != MergeStatus.running:
        transition_merge(session, job_id, step, from_={previous}, to=MergeStatus.queued)
    session.commit()

    def undo() -> None:
        if previous != MergeStatus.running:
            transition_merge(session, job_id, step, from_={MergeStatus.queued}, to=previous)

    enqueue_or_undo(lambda: queue.enqueue_merge(job_id, step), what="merge", session=session, undo=undo)
    session.refresh(checkpoint)
    return checkpoint


def claim_merge(*, session: Session, job_id: uuid.UUID, step: int) -> Checkpoint | None:
    """The checkpoint to merge, now 'running'; None when it is gone or already merged."""
    transition_merge(
        session,
        job_id,
        step,
        from_={None, MergeStatus.queued, MergeStatus.running, MergeStatus.failed},
        to=MergeStatus.running,
        conditions=[Checkpoint.deleted_at.is_(None), Checkpoint.is_adapter.is_(True)],
    )
    session.commit()
    checkpoint = session.scalar(select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.step == step))
    if checkpoint is None or checkpoint.merge_status != MergeStatus.running:
        return None
    return checkpoint


def finish_merge(*, session: Session, job_id: uuid.UUID, step: int, error: str | None) -> None:
    """'succeeded' or 'failed', announced as a 'merge' event (the failure's reason is in its message)."""
    status = MergeStatus.failed if error else MergeStatus.succeeded
    transition_merge(session, job_id, step, from_={MergeStatus.running}, to=status)
    message = f"merge of checkpoint {step} failed: {error}" if error else f"merged checkpoint {step} is ready"
    session.add(
        JobEvent(
            job_id=job_id,
            type=EventType.merge,
            step=step,
            level=EventLevel.error if error else EventLevel.info,
            message=message[:2000],
            data={"step": step, "merge_status": status.value},
        )
    )
    session.commit()
