"""One error shape everywhere: RFC 9457 problem documents with a request id, for every status, route or not."""

import base64
import io
import json
import logging

import pytest

from app.core.errors import is_openai_route
from app.core.logs import ContextFilter, json_formatter
from tests.utils.api import JSONL
from tests.utils.factories import tiny_spec

# Error shapes do not depend on the database: SQLite only, to keep the suite fast.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "errors", "request_id"}


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) == PROBLEM_KEYS and body["status"] == status and body["code"] == code
    assert body["type"].startswith("https://") and body["title"] and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@pytest.fixture
def captured_logs():
    """What the service's JSON handler writes, for the given loggers."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(json_formatter())
    loggers = [logging.getLogger(name) for name in ("app.access", "app.errors")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    for logger in loggers:
        logger.removeHandler(handler)


def test_every_status_is_a_problem_document(client, auth, settings):
    assert_problem(client.get("/v1/nothing", headers=auth), 404, "not_found")
    assert_problem(client.get("/nowhere/at/all"), 404, "not_found")
    assert_problem(client.delete("/v1/jobs", headers=auth), 405, "method_not_allowed")
    assert_problem(client.get("/v1/jobs"), 401, "unauthorized")
    body = assert_problem(client.get("/v1/jobs", params={"limit": 0}, headers=auth), 422, "validation_error")
    assert body["errors"][0]["field"] == "limit"
    assert_problem(
        client.post("/v1/datasets", params={"name": "x"}, content=b"{}", headers=auth), 415, "unsupported_media_type"
    )
    big = b"x" * (settings.max_request_bytes + 1)
    assert_problem(client.post("/v1/jobs", content=big, headers=auth | JSONL), 413, "payload_too_large")
    settings.max_dataset_bytes = 10
    too_big = client.post(
        "/v1/datasets", params={"name": "x"}, content=b'{"prompt": "long enough"}\n', headers=auth | JSONL
    )
    assert_problem(too_big, 413, "payload_too_large")


def test_naive_timestamps_and_forged_cursors_are_422_not_500(client, auth):
    naive = client.get("/v1/jobs", params={"created_after": "2026-01-01T00:00:00"}, headers=auth)
    assert assert_problem(naive, 422, "validation_error")["errors"][0]["field"] == "created_after"
    forged = base64.urlsafe_b64encode(b"2026-01-01T00:00:00|00000000-0000-0000-0000-000000000000").decode()
    for path in ["/v1/jobs", "/v1/datasets", "/v1/rewards"]:
        response = client.get(path, params={"cursor": forged}, headers=auth)
        assert assert_problem(response, 422, "validation_error")["errors"][0]["field"] == "cursor", path


def test_unexpected_error_is_a_500_with_only_a_request_id(client, captured_logs):
    def explode() -> None:
        raise ZeroDivisionError("secret internals")

    client.app.add_api_route("/explode", explode)
    response = client.get("/explode", headers={"X-Request-ID": "req-123"})
    body = assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "req-123" and "req-123" in body["detail"]
    assert "secret internals" not in response.text and "Traceback" not in response.text
    logged = [line for line in captured_logs() if line["logger"] == "app.errors"]
    assert len(logged) == 1 and logged[0]["request_id"] == "req-123"
    assert "ZeroDivisionError: secret internals" in logged[0]["exc_info"]  # the trace is in the log only
    access = [line for line in captured_logs() if line["logger"] == "app.access"]
    assert access[-1]["status"] == 500 and access[-1]["request_id"] == "req-123"


def test_access_log_lines_carry_request_and_job_ids(client, auth, captured_logs):
    job = client.post("/v1/jobs", json=tiny_spec(), headers=auth).json()
    client.get(f"/v1/jobs/{job['id']}", headers=auth | {"X-Request-ID": "read-1"})
    submit, read = [line for line in captured_logs() if line["logger"] == "app.access"][-2:]
    assert submit["job_id"] == job["id"] and submit["status"] == 201 and submit["route"] == "/v1/jobs"
    assert read["request_id"] == "read-1" and read["job_id"] == job["id"]
    assert read["route"] == "/v1/jobs/{job_id}" and read["duration_ms"] >= 0


def test_openapi_documents_the_problem_shape(client):
    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    openai_error = {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIErrorBody"}}}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if is_openai_route(path):  # OpenAI's error shape there (docs/inference.md)
                assert responses["default"]["content"] == openai_error and "422" not in responses, path
                continue
            for status in [
                "default",
                *(["401"] if path.startswith("/v1/") else []),
                *(["422"] if "422" in responses else []),
            ]:
                content = responses[status]["content"]
                ours = path.startswith(("/v1/files", "/v1/fine_tuning"))  # OpenAI's errors: test_openai_ft.py
                assert ours or content == {"application/problem+json": {"schema": problem_ref}}, (method, path, status)
