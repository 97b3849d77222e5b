"""The inference worker: a small HTTP service the API proxies to (`python -m workers.inference`).

Why HTTP and not a Celery queue: a chat completion is interactive (a Celery round trip through the
embedded SQLite broker polls at ~1 s; the result backend adds another poll) and streaming needs tokens
back as they are made. The worker's own streamed response (one JSON object per line) carries them with
no extra moving part on the embedded default and none beside Redis in production. The API alone talks
to it (loopback or the compose network; GRPO_INFERENCE_TOKEN, when set, is required on every call).

POST /generate   {model: ModelSpec, messages | prompt, knobs...} -> JSON, or NDJSON events when stream
GET  /healthz    liveness;  GET /stats  batches, rows per batch, cache contents
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.core.config import Settings
from workers.inference.batcher import Batcher, RequestError, Work
from workers.inference.cache import ModelCache
from workers.inference.decode import DecodeRequest
from workers.inference.resolve import ModelSpec, render_messages, render_prompt, resolve

logger = logging.getLogger(__name__)


class GenerateRequest(BaseModel):
    model: ModelSpec
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=64)
    stop: list[str] = Field(default_factory=list, max_length=4)
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)
    logprobs: int | None = Field(None, ge=0, le=20, description="None: off; k: the chosen token and the k best")
    echo: bool = False
    stream: bool = False

    @model_validator(mode="after")
    def _one_input(self) -> GenerateRequest:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("send exactly one of messages and prompt")
        return self


def _error(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(RequestError(status, message, param=param, code=code).body(), status_code=status)


def create_worker_app(settings: Settings, *, batcher: Batcher | None = None) -> Starlette:
    budget = int(settings.inference_memory_mb * 1024 * 1024)
    engine = batcher or Batcher(
        ModelCache(budget),
        max_rows=settings.inference_max_batch_rows,
        window_s=settings.inference_batch_window_ms / 1000,
    )
    token = settings.inference_token.get_secret_value() if settings.inference_token else None

    def authorized(request: Request) -> bool:
        return token is None or request.headers.get("authorization") == f"Bearer {token}"

    async def generate(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "the inference worker needs its token", code="unauthorized")
        try:
            body = GenerateRequest.model_validate(json.loads(await request.body()))
        except (ValueError, ValidationError) as error:
            return _error(400, f"bad generate request: {error}")
        work = _work(settings, body, asyncio.get_running_loop())
        engine.submit(work)
        first = await work.events.get()
        if first["type"] == "error":  # before any output: a plain HTTP error, so the API can answer with it
            return JSONResponse({"error": first["error"]}, status_code=first["status"])
        if body.stream:
            return StreamingResponse(_lines(first, work), media_type="application/x-ndjson")
        event = first
        while event["type"] == "delta":
            event = await work.events.get()
        if event["type"] == "error":
            return JSONResponse({"error": event["error"]}, status_code=event["status"])
        return JSONResponse(event)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def stats(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "the inference worker needs its token", code="unauthorized")
        return JSONResponse(engine.stats())

    app = Starlette(
        routes=[
            Route("/generate", generate, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
        ]
    )
    app.state.batcher = engine
    return app


def _work(settings: Settings, body: GenerateRequest, loop: asyncio.AbstractEventLoop) -> Work:
    messages, prompt = body.messages, body.prompt

    def render(tokenizer: Any) -> list[int]:
        return render_messages(tokenizer, messages) if messages is not None else render_prompt(tokenizer, prompt or "")

    def source() -> Any:
        try:
            return resolve(settings, body.model)
        except (OSError, ValueError, KeyError) as error:
            raise RequestError(
                404, f"model {body.model.id!r} cannot be loaded: {error}", param="model", code="model_not_found"
            ) from error

    params = DecodeRequest(
        prompt_ids=[],
        max_tokens=body.max_tokens or 0,
        temperature=body.temperature,
        top_p=body.top_p,
        n=body.n,
        stop=body.stop,
        seed=body.seed,
        top_logprobs=body.logprobs,
        cancel=threading.Event(),
    )
    return Work(
        model_key=body.model.cache_key,
        resolve=source,
        render=render,
        params=params,
        echo_logprobs=body.echo and body.logprobs is not None,
        events=asyncio.Queue(),
        loop=loop,
    )


async def _lines(first: dict[str, Any], work: Work) -> AsyncIterator[bytes]:
    event = first
    try:
        while True:
            yield (json.dumps(event) + "\n").encode()
            if event["type"] != "delta":
                return
            event = await work.events.get()
    finally:
        if event["type"] == "delta" and work.params.cancel is not None:
            work.params.cancel.set()  # the client went away mid-stream: stop generating for it
