"""A lost database or broker is a 503 with Retry-After on every route, never a 500 (issue 14 item 4)."""

import uuid

import pytest
from kombu.exceptions import OperationalError as BrokerOperationalError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from tests.utils.factories import tiny_spec


def _dead_database(monkeypatch, exc: Exception) -> None:
    def refuse(*_args, **_kwargs):
        raise exc

    for method in ("execute", "scalar", "scalars", "get", "commit", "flush"):
        monkeypatch.setattr(Session, method, refuse)


@pytest.mark.parametrize(
    "exc",
    [
        OperationalError("SELECT secret_sql FROM job", {}, Exception("server closed the connection")),
        InterfaceError("SELECT 1", {}, Exception("connection already closed")),
    ],
)
def test_a_lost_database_is_a_503_with_retry_after(client, auth, monkeypatch, exc):
    _dead_database(monkeypatch, exc)
    for response in (
        client.get(f"/v1/jobs/{uuid.uuid4()}", headers=auth),
        client.post("/v1/jobs", json=tiny_spec(), headers=auth),
        client.get("/v1/datasets", headers=auth),
    ):
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"].isdigit()
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "database_unavailable"
        assert "secret_sql" not in response.text


def test_a_dead_database_file_is_a_503(client, auth, tmp_path):
    from app.core.db import make_engine, make_session_factory

    engine = make_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'grpo.db'}")  # cannot be opened
    client.app.state.session_factory = make_session_factory(engine)
    try:
        assert client.get(f"/v1/jobs/{uuid.uuid4()}", headers=auth).status_code == 503
        response = client.post("/v1/jobs", json=tiny_spec(), headers=auth)
        assert response.status_code == 503 and response.headers["Retry-After"]
    finally:
        engine.dispose()


def test_a_broker_error_outside_the_enqueue_guard_is_a_503(client, auth, queue, monkeypatch):
    def refuse(_job_id):
        raise BrokerOperationalError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(queue, "enqueue_training", refuse)
    response = client.post("/v1/jobs", json=tiny_spec(), headers=auth)
    assert response.status_code == 503 and response.json()["code"] == "queue_unavailable"
    assert response.headers["Retry-After"]


def test_every_v1_operation_documents_the_503(client):
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        if path.startswith("/v1/"):
            for method, operation in operations.items():
                assert "503" in operation["responses"], (method, path)
