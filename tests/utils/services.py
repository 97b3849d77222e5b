"""Backing services of the tests: the PostgreSQL and Redis servers named by the environment.

Database backends: SQLite always; PostgreSQL when TEST_POSTGRES_URL is set (CI sets it, and sets
GRPO_REQUIRE_SERVICES=1 so a missing server fails the run instead of skipping).
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")  # e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres
REDIS_URL = os.environ.get("TEST_REDIS_URL")  # e.g. redis://127.0.0.1:6379/0
REQUIRE_SERVICES = os.environ.get("GRPO_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (GRPO_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def _admin_execute(statement: str) -> None:
    assert POSTGRES_URL
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(statement))
    admin.dispose()


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """An empty, uniquely named database on the test server, dropped afterwards."""
    assert POSTGRES_URL
    name = f"grpo_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
