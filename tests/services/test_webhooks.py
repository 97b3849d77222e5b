"""Webhooks on both databases: CRUD with the SSRF rule, and delivery to a local receiver by the worker's
sender (called directly): Standard Webhooks signatures verify, 500s are retried with backoff, a job's
events arrive in order, the delivery log and redeliver."""

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from tests.conftest import tiny_spec
from workers.webhooks import collect_events, send_due


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's check, as docs/control.md shows it."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, s.split(",", 1)[1]) for s in headers["webhook-signature"].split())


class Receiver:
    """A local HTTP endpoint answering the given status codes in turn (then 200), recording what it got."""

    def __init__(self, codes: list[int]) -> None:
        self.codes, self.received = list(codes), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers["content-length"]))
                code = receiver.codes.pop(0) if receiver.codes else 200
                receiver.received.append((code, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver():
    server = Receiver([500, 500])
    yield server
    server.server.shutdown()


def deliver_all(session_factory, settings, rounds: int = 40) -> None:
    with session_factory() as session, httpx.Client() as http:
        collect_events(session, settle_s=0)
        for _ in range(rounds):
            send_due(session, settings, http)
            time.sleep(0.03)


def test_private_addresses_are_refused_unless_the_operator_allows_them(client, auth, settings, receiver):
    refused = client.post("/v1/webhooks", json={"url": receiver.url}, headers=auth)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "url"
    assert "private or loopback" in refused.json()["errors"][0]["message"]
    bad = client.post("/v1/webhooks", json={"url": "ftp://example.com/x"}, headers=auth)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "url"
    settings.webhook_allow_private = True
    assert client.post("/v1/webhooks", json={"url": receiver.url}, headers=auth).status_code == 201


def test_signed_at_least_once_in_order_with_a_log_and_redeliver(
    client, auth, other_auth, settings, session_factory, receiver
):
    settings.webhook_allow_private, settings.webhook_backoff_s = True, 0.01
    created = client.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["status"]}, headers=auth)
    assert created.status_code == 201 and created.json()["secret"].startswith("whsec_")
    secret, hook = created.json()["secret"], created.json()["id"]
    assert "secret" not in client.get(f"/v1/webhooks/{hook}", headers=auth).json()
    job = client.post("/v1/jobs", json=tiny_spec(), headers=auth).json()
    client.post(f"/v1/jobs/{job['id']}/pause", headers=auth).raise_for_status()
    client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth).raise_for_status()
    deliver_all(session_factory, settings)

    codes = [code for code, _, _ in receiver.received]
    statuses = [json.loads(body)["data"]["status"] for _, _, body in receiver.received]
    assert codes == [500, 500, 200, 200, 200]  # the first event retried; the others waited behind it
    assert statuses == ["queued", "queued", "queued", "paused", "cancelled"]
    for _, headers, body in receiver.received:
        assert verify(secret, headers, body) and json.loads(body)["data"]["job_id"] == job["id"]
    assert len({headers["webhook-id"] for _, headers, _ in receiver.received}) == 3  # same id on retries

    log = client.get(f"/v1/webhooks/{hook}/deliveries", headers=auth).json()["data"]
    assert sorted((d["event_type"], d["status"], d["attempts"], d["last_status_code"]) for d in log) == [
        ("status", "succeeded", 1, 200),
        ("status", "succeeded", 1, 200),
        ("status", "succeeded", 3, 200),
    ]
    first = next(d for d in log if d["attempts"] == 3)
    again = client.post(f"/v1/webhooks/{hook}/deliveries/{first['id']}/redeliver", headers=auth)
    assert again.status_code == 200 and again.json()["status"] == "pending"
    deliver_all(session_factory, settings, rounds=2)
    assert receiver.received[-1][1]["webhook-id"] == first["id"]

    for method, path in [
        ("GET", f"/v1/webhooks/{hook}"),
        ("GET", f"/v1/webhooks/{hook}/deliveries"),
        ("POST", f"/v1/webhooks/{hook}/deliveries/{first['id']}/redeliver"),
        ("DELETE", f"/v1/webhooks/{hook}"),
    ]:
        assert client.request(method, path, headers=other_auth).status_code == 404, path
    assert client.get("/v1/webhooks", headers=other_auth).json()["data"] == []
    assert client.delete(f"/v1/webhooks/{hook}", headers=auth).status_code == 204
    assert client.get("/v1/webhooks", headers=auth).json()["data"] == []


def test_a_delivery_gives_up_after_the_attempt_limit(client, auth, settings, session_factory):
    settings.webhook_allow_private, settings.webhook_backoff_s, settings.webhook_max_attempts = True, 0.01, 2
    down = Receiver([500] * 10)
    try:
        hook = client.post("/v1/webhooks", json={"url": down.url}, headers=auth).json()["id"]
        client.post("/v1/jobs", json=tiny_spec(), headers=auth).raise_for_status()
        deliver_all(session_factory, settings, rounds=10)
    finally:
        down.server.shutdown()
    [delivery] = client.get(f"/v1/webhooks/{hook}/deliveries", headers=auth).json()["data"]
    assert (
        delivery["status"] == "failed" and delivery["attempts"] == 2 and delivery["last_error"].startswith("HTTP 500")
    )
