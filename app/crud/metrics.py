"""Idempotent writes: one statement per step, upserts keyed by the row's place in the run."""

import functools
import uuid
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import JobMetric, JobSample


def upsert(session: Session, model: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE: a step re-run after a resume overwrites, never duplicates."""
    if not rows:
        return
    statement = _upsert_statement(session.get_bind().dialect.name, model, tuple(keys), tuple(rows[0]))
    # One cached statement executed with a list of parameter sets: a multi-row VALUES literal would be
    # compiled afresh on every call (most of a step's write time, measured in bench/durability.py).
    session.execute(statement, rows)


@functools.lru_cache(maxsize=64)
def _upsert_statement(dialect: str, model: Any, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise NotImplementedError(f"upsert is not implemented for {dialect}")
    statement = insert(model.__table__)
    changed = {column: statement.excluded[column] for column in columns if column not in keys}
    return statement.on_conflict_do_update(index_elements=list(keys), set_=changed)


def upsert_step_metrics(*, session: Session, job_id: uuid.UUID, step: int, metrics: dict[str, float]) -> None:
    rows = [{"job_id": job_id, "step": step, "name": name, "value": float(value)} for name, value in metrics.items()]
    upsert(session, JobMetric, rows, ["job_id", "step", "name"])


def upsert_samples(*, session: Session, job_id: uuid.UUID, step: int, samples: list[dict[str, Any]]) -> None:
    rows = [{"job_id": job_id, "step": step, "position": position, **sample} for position, sample in enumerate(samples)]
    upsert(session, JobSample, rows, ["job_id", "step", "position"])
