"""A job says when it starts loading its model and how long that took, and a hub model out of reach fails the
job in seconds with model_load_failed naming model.source (not after the hub client's ~45 s of retries)."""

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from huggingface_hub import constants

from tests.utils.factories import tiny_spec


def events(client, auth, job_id: str) -> list[dict]:
    return client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}, headers=auth).json()["data"]


def submit(client, auth, source: str) -> str:
    spec = tiny_spec(max_steps=1)
    spec["model"] = {"source": source}
    response = client.post("/v1/jobs", json=spec, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def hub_answering_404(online: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:  # noqa: ARG001
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield
    server.shutdown()


def test_loading_the_model_is_announced_and_timed(client, auth, worker):
    job_id = submit(client, auth, "tiny-demo")
    assert worker.train(job_id).status == "succeeded"
    types = [e["type"] for e in events(client, auth, job_id)]
    assert types.index("model_loading") < types.index("model_loaded") < types.index("metrics")
    [loaded] = [e for e in events(client, auth, job_id) if e["type"] == "model_loaded"]
    assert loaded["data"]["seconds"] > 0 and loaded["message"].startswith("model loaded in ")


@pytest.mark.usefixtures("online")
def test_an_unreachable_hub_fails_the_job_in_seconds_naming_model_source(client, auth, worker, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on: connection refused at once
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{probe.getsockname()[1]}")
    job_id = submit(client, auth, "no-such-org/no-such-model")
    started = time.monotonic()
    job = worker.train(job_id)
    assert time.monotonic() - started < 10
    assert job.status == "failed"
    assert job.error["code"] == "model_load_failed" and job.error["param"] == "model.source"
    assert "cannot be reached" in job.error["message"]
    assert "model_loading" in [e["type"] for e in events(client, auth, job_id)]


@pytest.mark.usefixtures("hub_answering_404")
def test_a_model_the_hub_does_not_know_fails_the_job_naming_model_source(client, auth, worker):
    job = worker.train(submit(client, auth, "no-such-org/no-such-model"))
    assert job.status == "failed" and job.error["code"] == "model_load_failed"
    assert job.error["param"] == "model.source" and "no model 'no-such-org/no-such-model'" in job.error["message"]


def test_offline_without_a_cached_copy_fails_at_once(client, auth, worker, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    job = worker.train(submit(client, auth, "no-such-org/no-such-model"))
    assert job.status == "failed" and job.error["code"] == "model_load_failed"
    assert "HF_HUB_OFFLINE" in job.error["message"]
