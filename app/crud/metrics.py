"""Idempotent writes: one statement per step, upserts keyed by the row's place in the run."""

import uuid
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import JobMetric, JobSample


def upsert(session: Session, model: Any, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE: a step re-run after a resume overwrites, never duplicates."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise NotImplementedError(f"upsert is not implemented for {dialect}")
    # One statement without values, executed with the rows as parameters: SQLAlchemy caches its
    # compiled form and sends the rows in batched VALUES ("insertmanyvalues"), instead of building and
    # compiling a new statement with a bind parameter per value on every step.
    statement = insert(model.__table__)
    changed = {column: statement.excluded[column] for column in rows[0] if column not in keys}
    session.execute(statement.on_conflict_do_update(index_elements=keys, set_=changed), rows)


def upsert_step_metrics(*, session: Session, job_id: uuid.UUID, step: int, metrics: dict[str, float]) -> None:
    rows = [{"job_id": job_id, "step": step, "name": name, "value": float(value)} for name, value in metrics.items()]
    upsert(session, JobMetric, rows, ["job_id", "step", "name"])


def upsert_samples(*, session: Session, job_id: uuid.UUID, step: int, samples: list[dict[str, Any]]) -> None:
    rows = [{"job_id": job_id, "step": step, "position": position, **sample} for position, sample in enumerate(samples)]
    upsert(session, JobSample, rows, ["job_id", "step", "position"])
