"""The worker process's database session factory (one engine per process, built lazily)."""

from functools import cache

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import settings
from app.core.db import make_engine, make_session_factory


@cache
def session_factory() -> sessionmaker[Session]:
    return make_session_factory(make_engine(settings.database_url))
