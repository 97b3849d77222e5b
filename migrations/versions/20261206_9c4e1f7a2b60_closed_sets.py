"""closed sets: CHECK constraints on job, evaluation, merge statuses and event types and levels; merge
'ready' becomes 'succeeded'; job error codes outside the documented list become 'training_failed'

Revision ID: 9c4e1f7a2b60
Revises: c4f1a9e2b7d5
Create Date: 2026-12-06 05:00:00.000000
"""

import contextlib
import json
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9c4e1f7a2b60"
down_revision: str | None = "c4f1a9e2b7d5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The sets as of this revision (a migration must not follow later edits of the enums).
JOB_STATUSES = ("queued", "running", "pausing", "paused", "succeeded", "failed", "cancelled")
EVALUATION_STATUSES = ("queued", "running", "succeeded", "failed")
EVALUATION_TRIGGERS = ("scheduled", "on_demand")
MERGE_STATUSES = ("queued", "running", "succeeded", "failed")
EVENT_TYPES = (
    "status",
    "metrics",
    "checkpoint",
    "evaluation",
    "merge",
    "alert",
    "resumed",
    "cancel_requested",
    "waiting",
    "model_loading",
    "model_loaded",
)
EVENT_LEVELS = ("info", "warning", "error")
ERROR_CODES = (
    "training_failed",
    "internal_error",
    "invalid_input",
    "model_load_failed",
    "storage_full",
    "reward_error",
    "invalid_reward",
    "reward_program_error",
    "sandbox_unavailable",
    "safeguard_stop",
    "worker_lost",
    "too_many_attempts",
    "enqueue_failed",
)
# (table, constraint name as the models' naming convention spells it, column, values)
CHECKS = (
    ("job", "ck_job_job_status", "status", JOB_STATUSES),
    ("evaluation", "ck_evaluation_evaluation_status", "status", EVALUATION_STATUSES),
    ("evaluation", "ck_evaluation_evaluation_trigger", "trigger", EVALUATION_TRIGGERS),
    ("checkpoint", "ck_checkpoint_merge_status", "merge_status", MERGE_STATUSES),
    ("job_event", "ck_job_event_event_type", "type", EVENT_TYPES),
    ("job_event", "ck_job_event_event_level", "level", EVENT_LEVELS),
)


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


@contextlib.contextmanager
def _sqlite_foreign_keys_off() -> Iterator[None]:
    """SQLite adds a constraint by rebuilding the table (batch mode): DROP TABLE of the old copy would
    cascade to every child row (job events, metrics, checkpoints) while foreign keys are enforced."""
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    with op.get_context().autocommit_block():  # the pragma is ignored inside a transaction
        op.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        with op.get_context().autocommit_block():
            op.execute("PRAGMA foreign_keys=ON")


def _close_error_codes(table_name: str) -> None:
    """Errors whose code is not in the list (e.g. a database driver's internal code) become training_failed,
    keeping their message."""
    table = sa.table(table_name, sa.column("id"), sa.column("error", sa.JSON()))
    bind = op.get_bind()
    for row_id, error in bind.execute(sa.select(table.c.id, table.c.error).where(table.c.error.is_not(None))):
        if isinstance(error, str):  # some drivers hand JSON back as text
            error = json.loads(error)
        if isinstance(error, dict) and error.get("code") not in ERROR_CODES:
            bind.execute(table.update().where(table.c.id == row_id).values(error={**error, "code": "training_failed"}))


def upgrade() -> None:
    op.execute("UPDATE checkpoint SET merge_status = 'succeeded' WHERE merge_status = 'ready'")
    _close_error_codes("job")
    _close_error_codes("evaluation")
    with _sqlite_foreign_keys_off():
        for table in ("job", "evaluation", "checkpoint", "job_event"):
            with op.batch_alter_table(table) as batch_op:
                for _, name, column, values in (check for check in CHECKS if check[0] == table):
                    batch_op.create_check_constraint(op.f(name), _in(column, values))


def downgrade() -> None:
    with _sqlite_foreign_keys_off():
        for table in ("job", "evaluation", "checkpoint", "job_event"):
            with op.batch_alter_table(table) as batch_op:
                for _, name, _column, _values in (check for check in CHECKS if check[0] == table):
                    batch_op.drop_constraint(op.f(name), type_="check")
    op.execute("UPDATE checkpoint SET merge_status = 'ready' WHERE merge_status = 'succeeded'")
