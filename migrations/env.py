"""Alembic environment: the URL comes from settings (or the caller), metadata from app.models."""

from alembic import context

from app.core.config import settings
from app.core.db import make_engine
from app.models import Base
from app.models.base import UTCDateTime

config = context.config
target_metadata = Base.metadata


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    # Migrations must not import app code: render our custom types as plain SQLAlchemy types.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and getattr(obj, "_variant_mapping", None) and "postgresql" in obj._variant_mapping:  # type: ignore[attr-defined]
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")  # type: ignore[attr-defined]
        return "sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')"
    return False


def _url() -> str:
    # A caller (tests, prestart) may pass the URL explicitly; otherwise settings decide.
    return config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url") or settings.database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=target_metadata, compare_type=True, render_as_batch=True, render_item=_render_item
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        # render_as_batch lets ALTERs work on SQLite (it rebuilds the table).
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            render_as_batch=True,
            render_item=_render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
