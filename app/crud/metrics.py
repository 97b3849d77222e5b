"""Idempotent metric writes: one statement per step, an upsert keyed by (job, step, name)."""

import uuid

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import JobMetric


def upsert_step_metrics(*, session: Session, job_id: uuid.UUID, step: int, metrics: dict[str, float]) -> None:
    """A step re-run after a resume writes the same keys again: update in place, never duplicate."""
    if not metrics:
        return
    rows = [{"job_id": job_id, "step": step, "name": name, "value": float(value)} for name, value in metrics.items()]
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise NotImplementedError(f"metric upsert is not implemented for {dialect}")
    statement = insert(JobMetric).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["job_id", "step", "name"], set_={"value": statement.excluded.value}
    )
    session.execute(statement)
