"""Migrations build the schema the models describe, on every backend, and downgrade cleanly."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.core.db import make_engine
from app.core.migrate import alembic_config
from app.models import Base


def test_models_and_migrations_agree(settings):
    engine = make_engine(settings.database_url)  # the settings fixture ran `upgrade head`
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == [], f"models differ from migrations; run alembic revision --autogenerate: {diff}"


def test_downgrade_to_base_and_up_again(settings):
    from alembic import command

    config = alembic_config(settings.database_url)
    command.downgrade(config, "base")
    engine = make_engine(settings.database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    command.upgrade(config, "head")
    assert {"job", "job_metric", "job_event", "tenant", "api_key"} <= set(inspect(engine).get_table_names())
    engine.dispose()
