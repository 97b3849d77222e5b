"""The OpenAI-compatible routes in the API process, with the inference worker replaced by a stub transport:
model ids and tenancy, what is sent to the worker, OpenAI error bodies, limits, usage counting."""

import asyncio
import json
import uuid

import httpx
import pytest
from pydantic import SecretStr

from app.models import Checkpoint
from app.services.inference_limits import InferenceLimiter
from app.services.inference_proxy import InferenceProxy
from tests.conftest import tiny_spec

DONE = {
    "type": "done",
    "choices": [{"index": 0, "text": "42", "finish_reason": "stop", "logprobs": None}],
    "prompt_logprobs": None,
    "usage": {"prompt_tokens": 3, "completion_tokens": 2},
}


class StubWorker:
    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.status, self.body = 200, DONE

    def __call__(self, request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        self.sent.append(payload)
        if payload["stream"] and self.status == 200:
            lines = [{"type": "delta", "index": 0, "text": "4", "logprobs": []}, {**DONE}]
            return httpx.Response(200, content="".join(json.dumps(e) + "\n" for e in lines).encode())
        return httpx.Response(self.status, json=self.body)


@pytest.fixture
def worker(client) -> StubWorker:
    stub = StubWorker()
    client.app.state.inference = InferenceProxy(client.app.state.settings, transport=httpx.MockTransport(stub))
    return stub


def _checkpoint(session_factory, job_id: str, step: int, *, adapter: bool = False) -> None:
    with session_factory() as session:
        session.add(
            Checkpoint(
                job_id=uuid.UUID(job_id),
                step=step,
                storage_key=f"jobs/{job_id}/checkpoints/{step:06d}",
                size_bytes=1,
                is_adapter=adapter,
            )
        )
        session.commit()


@pytest.fixture
def job_id(client, auth, session_factory) -> str:
    job = client.post("/v1/jobs", json=tiny_spec(), headers=auth).json()["id"]
    _checkpoint(session_factory, job, 2)
    _checkpoint(session_factory, job, 4, adapter=True)
    return job


def test_models_lists_base_models_and_the_tenants_checkpoints(client, auth, other_auth, job_id) -> None:
    ids = [m["id"] for m in client.get("/v1/models", headers=auth).json()["data"]]
    assert ids == ["tiny-demo", f"{job_id}:latest", f"{job_id}:ckpt-4", f"{job_id}:ckpt-2"]
    assert [m["id"] for m in client.get("/v1/models", headers=other_auth).json()["data"]] == ["tiny-demo"]
    assert client.get(f"/v1/models/{job_id}:ckpt-2", headers=auth).json()["owned_by"] == "team-a"


def test_latest_and_steps_resolve_to_their_checkpoints(client, auth, worker, job_id) -> None:
    for model, step, adapter in [(f"{job_id}:latest", 4, True), (f"{job_id}:ckpt-2", 2, False)]:
        answer = client.post(
            "/v1/chat/completions", headers=auth, json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
        )
        assert answer.status_code == 200, answer.text
        spec = worker.sent[-1]["model"]
        assert spec == {
            "id": model,
            "kind": "checkpoint",
            "storage_key": f"jobs/{job_id}/checkpoints/{step:06d}",
            "is_adapter": adapter,
        }
    body = answer.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "42",
        "refusal": None,
    }
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


@pytest.mark.parametrize("model", ["{job}:ckpt-3", "{job}:ckpt-x", "{job}", "nope", "{other}:latest"])
def test_unknown_or_foreign_models_are_404_model_not_found(client, auth, other_auth, worker, job_id, model) -> None:
    other_job = client.post("/v1/jobs", json=tiny_spec(), headers=other_auth).json()["id"]
    answer = client.post(
        "/v1/completions", headers=auth, json={"model": model.format(job=job_id, other=other_job), "prompt": "1"}
    )
    assert answer.status_code == 404
    assert answer.json() == {
        "error": {
            "message": answer.json()["error"]["message"],
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    assert worker.sent == []


def test_another_tenants_checkpoint_is_absent_for_retrieve_too(client, other_auth, job_id) -> None:
    assert client.get(f"/v1/models/{job_id}:latest", headers=other_auth).status_code == 404


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 2.5}, "temperature"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "frequency_penalty": 1}, "frequency_penalty"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": []}, "tools"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 10**6}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
def test_bad_requests_are_openai_400s_naming_the_param(client, auth, worker, body, param) -> None:
    answer = client.post("/v1/chat/completions", headers=auth, json={"model": "tiny-demo", **body})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]
    assert worker.sent == []


def test_native_routes_keep_problem_json(client, auth) -> None:
    answer = client.get(f"/v1/jobs/{uuid.uuid4()}", headers=auth)
    assert answer.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/models").json()["error"]["type"] == "authentication_error"


def test_worker_errors_and_outages_become_openai_errors(client, auth, worker) -> None:
    worker.status = 400
    worker.body = {
        "error": {
            "message": "too long",
            "type": "invalid_request_error",
            "param": "max_tokens",
            "code": "context_length_exceeded",
        }
    }
    answer = client.post("/v1/completions", headers=auth, json={"model": "tiny-demo", "prompt": "1"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "context_length_exceeded"
    assert answer.json()["error"]["param"] == "max_tokens"

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client.app.state.inference = InferenceProxy(client.app.state.settings, transport=httpx.MockTransport(down))
    answer = client.post("/v1/completions", headers=auth, json={"model": "tiny-demo", "prompt": "1", "stream": True})
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.json()["error"]["type"] == "server_error"


def test_completions_send_each_prompt_and_number_choices_like_openai(client, auth, worker) -> None:
    answer = client.post(
        "/v1/completions", headers=auth, json={"model": "tiny-demo", "prompt": ["a", "b"], "n": 1, "echo": True}
    ).json()
    assert sorted(p["prompt"] for p in worker.sent) == ["a", "b"]
    assert worker.sent[0]["max_tokens"] == 16  # OpenAI's default for completions
    assert [(c["index"], c["text"]) for c in answer["choices"]] == [(0, "a42"), (1, "b42")]
    assert answer["usage"]["prompt_tokens"] == 6


@pytest.mark.usefixtures("worker")
def test_streams_are_server_sent_events_ending_with_done(client, auth) -> None:
    with client.stream(
        "POST",
        "/v1/chat/completions",
        headers=auth,
        json={
            "model": "tiny-demo",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as answer:
        lines = [line for line in answer.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1]["choices"][0]["delta"] == {"content": "4"}
    assert chunks[2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["total_tokens"] == 5


@pytest.mark.usefixtures("worker")
def test_rate_and_concurrency_limits_are_429_with_retry_after(client, auth) -> None:
    client.app.state.inference_limiter = InferenceLimiter(requests_per_minute=2, max_concurrent=4)
    body = {"model": "tiny-demo", "prompt": "1"}
    assert [client.post("/v1/completions", headers=auth, json=body).status_code for _ in range(2)] == [200, 200]
    limited = client.post("/v1/completions", headers=auth, json=body)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"


def test_concurrency_slot_is_released_when_a_request_fails() -> None:
    limiter = InferenceLimiter(requests_per_minute=100, max_concurrent=1)
    tenant = uuid.uuid4()
    with pytest.raises(RuntimeError), limiter.admit(tenant):
        raise RuntimeError("worker failed")
    with limiter.admit(tenant):
        with pytest.raises(Exception, match="at once"), limiter.admit(tenant):
            pass


@pytest.mark.usefixtures("worker")
def test_tokens_are_counted_per_tenant(client, auth, other_auth) -> None:
    body = {"model": "tiny-demo", "messages": [{"role": "user", "content": "x"}]}
    for _ in range(2):
        client.post("/v1/chat/completions", headers=auth, json=body)
    with client.stream("POST", "/v1/chat/completions", headers=auth, json={**body, "stream": True}) as answer:
        list(answer.iter_lines())
    usage = client.get("/v1/inference/usage", headers=auth).json()["data"]
    assert usage == [{"model": "tiny-demo", "requests": 3, "prompt_tokens": 9, "completion_tokens": 6}]
    assert client.get("/v1/inference/usage", headers=other_auth).json()["data"] == []


def test_the_proxy_sends_the_workers_token(settings) -> None:
    seen: list[str | None] = []

    def worker(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json=DONE)

    settings = settings.model_copy(update={"inference_token": SecretStr("t0ken")})
    proxy = InferenceProxy(settings, transport=httpx.MockTransport(worker))
    assert asyncio.run(proxy.generate({"model": {}, "prompt": "1"}))["usage"]["completion_tokens"] == 2
    assert seen == ["Bearer t0ken"]
