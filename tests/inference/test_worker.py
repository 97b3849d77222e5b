"""The inference worker process's parts: dynamic batching of concurrent requests, its token, its errors."""

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from app.core.config import Settings
from workers.inference.batcher import Batcher, Work
from workers.inference.cache import ModelCache
from workers.inference.decode import DecodeRequest
from workers.inference.resolve import ModelSpec, render_prompt, resolve
from workers.inference.server import create_worker_app

TINY = {"id": "tiny-demo", "kind": "base", "source": "tiny-demo"}


@pytest.fixture(scope="module")
def worker_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("data"), log_format="none", secret_key="s")


def _work(settings: Settings, loop: asyncio.AbstractEventLoop, spec: dict, prompt: str, n: int = 1) -> Work:
    model = ModelSpec.model_validate(spec)
    return Work(
        model_key=model.cache_key,
        resolve=lambda: resolve(settings, model),
        render=lambda tokenizer: render_prompt(tokenizer, prompt),
        params=DecodeRequest(prompt_ids=[], max_tokens=4, n=n, seed=1),
        echo_logprobs=False,
        events=asyncio.Queue(),
        loop=loop,
    )


async def _finish(work: Work) -> dict:
    while (event := await work.events.get())["type"] == "delta":
        pass
    return event


def test_concurrent_requests_for_one_model_decode_as_one_batch(worker_settings: Settings, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()  # a second "model" without files: its request runs in its own round and fails there

    async def scenario() -> tuple[list[dict], dict]:
        batcher = Batcher(ModelCache(10**9), max_rows=32, window_s=0.5)
        loop = asyncio.get_running_loop()
        works = [_work(worker_settings, loop, TINY, p, n=2) for p in ("1", "22", "333")]
        works.append(_work(worker_settings, loop, {"id": "x", "kind": "base", "source": str(other)}, "1"))
        for work in works:
            batcher.submit(work)
        return [await _finish(w) for w in works], batcher.stats()

    events, stats = asyncio.run(scenario())
    assert [e["type"] for e in events] == ["done", "done", "done", "error"]
    assert events[3]["error"]["code"] == "model_not_found"
    assert [e["usage"]["prompt_tokens"] for e in events[:3]] == [1, 2, 3]
    assert stats["batches"] == 1 and stats["requests"] == 3 and stats["mean_rows_per_batch"] == 6


def test_the_row_cap_splits_batches(worker_settings: Settings) -> None:
    async def scenario() -> dict:
        batcher = Batcher(ModelCache(10**9), max_rows=4, window_s=0.5)
        loop = asyncio.get_running_loop()
        works = [_work(worker_settings, loop, TINY, "1", n=3) for _ in range(3)]
        for work in works:
            batcher.submit(work)
        for work in works:
            await _finish(work)
        return batcher.stats()

    stats = asyncio.run(scenario())
    assert stats["batches"] == 3 and stats["mean_rows_per_batch"] == 3


def test_the_worker_requires_its_token_when_one_is_set(worker_settings: Settings) -> None:
    settings = worker_settings.model_copy(update={"inference_token": SecretStr("t0ken")})
    with TestClient(create_worker_app(settings)) as client:
        body = {"model": TINY, "prompt": "1", "max_tokens": 2}
        assert client.post("/generate", json=body).status_code == 401
        answer = client.post("/generate", json=body, headers={"Authorization": "Bearer t0ken"})
        assert answer.status_code == 200 and answer.json()["type"] == "done"
        assert client.get("/healthz").status_code == 200


def test_bad_generate_requests_are_400s(worker_settings: Settings) -> None:
    with TestClient(create_worker_app(worker_settings)) as client:
        both = client.post("/generate", json={"model": TINY, "prompt": "1", "messages": []})
        assert both.status_code == 400 and "exactly one of messages and prompt" in both.json()["error"]["message"]
        empty = client.post("/generate", json={"model": TINY, "prompt": ""})
        assert empty.status_code == 400 and empty.json()["error"]["param"] == "prompt"
