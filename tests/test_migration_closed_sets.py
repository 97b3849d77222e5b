"""The closed-sets migration (9c4e1f7a2b60) converts existing rows, keeps every child row (SQLite rebuilds
the tables), and the database then refuses a value outside a set."""

import uuid

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app.core.db import make_engine
from app.core.migrate import alembic_config

BEFORE = "b7e2c94a1d03"  # the head before the closed sets: rows written by that schema
PARENT = ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision("9c4e1f7a2b60").down_revision


def test_existing_rows_are_converted_and_kept(database_url):
    config = alembic_config(database_url)
    command.upgrade(config, BEFORE)
    engine = make_engine(database_url)
    tenant, job = uuid.uuid4(), uuid.uuid4()
    ids = {"tenant": tenant.hex, "job": job.hex} if engine.dialect.name == "sqlite" else {"tenant": tenant, "job": job}
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tenant (id, name, max_running_jobs, max_queued_jobs, created_at) "
                "VALUES (:tenant, 't', 2, 20, CURRENT_TIMESTAMP)"
            ),
            ids,
        )
        connection.execute(
            text(
                "INSERT INTO job (id, tenant_id, name, spec, status, total_steps, current_step, cancel_requested, "
                "error, latest_metrics, alerts, train_seconds, steps_recorded, attempts, created_at) "
                "VALUES (:job, :tenant, 'j', '{}', 'failed', 10, 3, false, "
                '\'{"code": "9h9h", "message": "m", "param": null}\', \'{}\', \'[]\', 0, 3, 1, '
                "CURRENT_TIMESTAMP)"
            ),
            ids,
        )
        connection.execute(
            text(
                "INSERT INTO job_event (job_id, level, type, message, data, created_at) "
                "VALUES (:job, 'info', 'status', 'job queued', '{}', CURRENT_TIMESTAMP)"
            ),
            ids,
        )
        connection.execute(
            text(
                "INSERT INTO checkpoint (id, job_id, step, storage_key, size_bytes, is_adapter, metrics, "
                "merge_status, created_at) VALUES (:checkpoint, :job, 2, 'k', 1, true, '{}', 'ready', "
                "CURRENT_TIMESTAMP)"
            ),
            ids | {"checkpoint": uuid.uuid4().hex if engine.dialect.name == "sqlite" else uuid.uuid4()},
        )

    command.upgrade(config, "head")

    with engine.connect() as connection:
        assert connection.scalar(text("SELECT merge_status FROM checkpoint")) == "succeeded"
        assert connection.scalar(text("SELECT count(*) FROM job_event")) == 1  # not cascaded away
        error = connection.scalar(text("SELECT error FROM job"))
        assert '"training_failed"' in str(error).replace("'", '"') and "9h9h" not in str(error)
        with pytest.raises(IntegrityError):
            connection.execute(text("UPDATE job SET status = 'exploded'"))
        connection.rollback()
        with pytest.raises(IntegrityError):
            connection.execute(text("UPDATE job_event SET type = 'made_up'"))
        connection.rollback()
        connection.execute(text("UPDATE job SET status = 'paused'"))  # the pause/resume statuses are in the set
        connection.rollback()

    command.downgrade(config, PARENT)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT merge_status FROM checkpoint")) == "ready"
        assert connection.scalar(text("SELECT count(*) FROM job_event")) == 1
    engine.dispose()
