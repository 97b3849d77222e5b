"""Everything a job needs on the worker's disk before training starts: rows, and the checkpoint to resume."""

import shutil
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.core.storage import ObjectStore
from app.models import Dataset, Job
from app.schemas.job import DatasetSpec, InitFrom
from app.services.artifacts import TRAINER_ONLY as MODEL_FILES_EXCLUDED
from app.services.artifacts import latest_checkpoint
from app.services.datasets import DatasetRowError, read_rows
from workers.contract import JobFailure
from workers.engine import latest_checkpoint as latest_local_checkpoint
from workers.engine.checkpoint import checkpoint_dir
from workers.engine.export import merge_lora_checkpoint


class JobInputError(JobFailure):
    """A job's input is unusable; `param` names the spec field."""

    code = "invalid_input"

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def load_rows(
    dataset: DatasetSpec, *, store: ObjectStore, session: Session, tenant_id: uuid.UUID, param: str
) -> list[dict[str, Any]]:
    if dataset.rows is not None:
        return dataset.rows
    row = session.scalar(select(Dataset).where(Dataset.id == dataset.dataset_id, Dataset.tenant_id == tenant_id))
    if row is None:
        raise JobInputError(f"dataset {dataset.dataset_id} no longer exists", param=f"{param}.dataset_id")
    try:
        return read_rows(store, row, prompt_field=dataset.prompt_field)
    except DatasetRowError as exc:  # the upload's row rules, for datasets stored before they were all checked
        raise JobInputError(f"dataset {row.id} {exc}", param=f"{param}.dataset_id") from exc


def prepare_resume(
    *, work_dir: Path, store: ObjectStore, sessions: sessionmaker[Session], job_id: uuid.UUID
) -> Path | None:
    """The newest complete checkpoint, local or stored; a stored one newer than the local copy is fetched.

    A worker on another machine (or with a wiped disk) has no local copy; a checkpoint written locally
    but not yet stored when the worker died is still usable on the same machine.
    """
    local = latest_local_checkpoint(work_dir)
    local_step = int(local.name.rsplit("-", 1)[1]) if local else -1
    with sessions() as session:
        stored = latest_checkpoint(session=session, job_id=job_id)
    if stored is None or stored.step <= local_step:
        return local
    target = checkpoint_dir(work_dir, stored.step)
    partial = target.with_name(target.name + ".download")
    shutil.rmtree(partial, ignore_errors=True)
    store.get_dir(stored.storage_key, partial)
    shutil.rmtree(target, ignore_errors=True)  # an incomplete leftover of a crashed copy
    partial.rename(target)
    return target


def prepare_init_weights(
    init_from: InitFrom, *, work_dir: Path, store: ObjectStore, session: Session, tenant_id: uuid.UUID
) -> Path:
    """Fetch another job's checkpoint (model files only; a LoRA one merged) to start from; returns the
    directory to load. Also called by merges of a job that started this way: its base lives there."""
    source = session.scalar(select(Job).where(Job.id == init_from.job_id, Job.tenant_id == tenant_id))
    checkpoint = None if source is None else latest_checkpoint(session=session, job_id=source.id, step=init_from.step)
    if checkpoint is None:
        raise JobInputError("the checkpoint to start from no longer exists", param="init_from")
    target = work_dir / "init" / f"{checkpoint.job_id}-{checkpoint.step:06d}"
    if (target / "config.json").exists():
        return target
    partial = target.with_name(target.name + ".download")
    shutil.rmtree(partial, ignore_errors=True)
    if checkpoint.is_adapter:
        # Adapters alone are no starting point for a new run: start from them merged into their base.
        store.get_dir(checkpoint.storage_key, partial / "adapter")
        merge_lora_checkpoint(partial / "adapter", target)
        shutil.rmtree(partial, ignore_errors=True)
        return target
    for name, _ in store.list(checkpoint.storage_key):
        if name.startswith(MODEL_FILES_EXCLUDED):
            continue
        (partial / name).parent.mkdir(parents=True, exist_ok=True)
        with store.open(f"{checkpoint.storage_key}/{name}") as source_file, (partial / name).open("wb") as out:
            shutil.copyfileobj(source_file, out)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target
