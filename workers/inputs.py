"""Everything a job needs on the worker's disk before training starts: rows, and the checkpoint to resume."""

import shutil
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.core.storage import ObjectStore
from app.models import Dataset
from app.schemas.job import DatasetSpec
from app.services.artifacts import latest_checkpoint
from app.services.datasets import read_rows
from workers.engine import checkpoint_dir, find_latest_checkpoint


class JobInputError(Exception):
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
    return read_rows(store, row)


def prepare_resume(
    *, work_dir: Path, store: ObjectStore, sessions: sessionmaker[Session], job_id: uuid.UUID
) -> Path | None:
    """The newest complete checkpoint, local or stored; a stored one newer than the local copy is fetched.

    A worker on another machine (or with a wiped disk) has no local copy; a checkpoint written locally
    but not yet stored when the worker died is still usable on the same machine.
    """
    local = find_latest_checkpoint(work_dir)
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
