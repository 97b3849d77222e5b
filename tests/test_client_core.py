"""The client's retry decisions and SSE parsing, on their own (the live-API tests are in tests/integration)."""

import email.utils
import json
from datetime import UTC, datetime, timedelta

import httpx

from grpo_client._core import Call, Settings, SseParser, next_wait_s, retry_after_s

SETTINGS = Settings(base_url="http://x", api_key="k", max_retries=3, backoff_s=0.5, max_wait_s=10)


def response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


def test_retry_after_in_seconds_or_as_a_date():
    assert retry_after_s(response(429, **{"Retry-After": "7"})) == 7.0
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= retry_after_s(response(503, **{"Retry-After": later})) <= 30
    assert retry_after_s(response(429)) is None and retry_after_s(response(429, **{"Retry-After": "soon"})) is None


def test_which_answers_are_retried_and_for_how_long():
    assert next_wait_s(SETTINGS, 0, response=response(429, **{"Retry-After": "2"})) == 2.0
    assert next_wait_s(SETTINGS, 0, response=response(429, **{"Retry-After": "60"})) is None  # too long: raise
    assert 0.25 <= next_wait_s(SETTINGS, 0, response=response(503)) <= 0.5  # backoff with jitter
    assert 1.0 <= next_wait_s(SETTINGS, 2, response=response(503)) <= 2.0
    assert next_wait_s(SETTINGS, 3, response=response(503)) is None  # out of retries
    for status in (200, 400, 404, 409, 422, 500):
        assert next_wait_s(SETTINGS, 0, response=response(status)) is None


def test_creates_carry_one_idempotency_key_and_are_retry_safe():
    create = Call("POST", "/v1/jobs", json={}, create=True)
    assert len(create.headers["Idempotency-Key"]) == 32 and create.retry_safe
    assert Call("POST", "/v1/jobs", create=True, idempotency_key="mine").headers["Idempotency-Key"] == "mine"
    assert not Call("POST", "/v1/jobs/x/cancel").retry_safe and Call("GET", "/v1/jobs").retry_safe


def test_sse_parser_joins_data_lines_and_skips_pings():
    event = {
        "id": 3,
        "created_at": "2026-01-01T00:00:00Z",
        "level": "info",
        "type": "status",
        "message": "m",
        "data": {},
    }
    text = json.dumps(event)
    lines = [": ping", "id: 3", "event: status", f"data: {text[:10]}", f"data: {text[10:]}", ""]
    parser = SseParser()
    parsed = list(parser.events(lines))
    assert parser.last_id == "3" and len(parsed) == 1
    assert parsed[0].id == 3 and parsed[0].type == "status"
