"""OpenAI-compatible inference: GET /v1/models, POST /v1/chat/completions, POST /v1/completions.

Errors on these routes are OpenAI's `{"error": {...}}` (app/core/errors.py switches on the path).
Generation happens in the inference worker; these handlers authorise, resolve the model id, apply the
tenant's limits, relay, and count tokens.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import ExitStack
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.api.deps import CurrentTenant, SessionDep, SettingsDep
from app.core.errors import FieldError, ProblemError
from app.models import Tenant
from app.schemas.openai import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    InferenceUsagePage,
    InferenceUsageRow,
    ModelList,
    ModelObject,
    OpenAIErrorBody,
)
from app.services import openai_format
from app.services.inference import find_model, list_models, record_usage, usage_totals

router = APIRouter(tags=["inference"])

_STREAM = {
    200: {"content": {"application/json": {}, "text/event-stream": {}}, "description": "JSON, or SSE when stream"}
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIErrorBody, "description": text}
    for code, text in [
        (400, "Invalid request"),
        (404, "No such model for this tenant"),
        (429, "Rate limited"),
        (503, "Inference worker unavailable"),
    ]
}


@router.get("/models", response_model=ModelList)
def read_models(session: SessionDep, tenant: CurrentTenant, settings: SettingsDep) -> ModelList:
    """Models this API key may use: the operator's base models and every stored checkpoint of the
    tenant's jobs, as '<job_id>:ckpt-<step>' and '<job_id>:latest'."""
    return ModelList(data=list_models(session=session, tenant=tenant, settings=settings))


@router.get("/models/{model_id:path}", response_model=ModelObject, responses=_ERRORS)
def read_model(model_id: str, session: SessionDep, tenant: CurrentTenant, settings: SettingsDep) -> ModelObject:
    """One model by id; another tenant's checkpoint is a 404 model_not_found."""
    return find_model(session=session, tenant=tenant, settings=settings, model_id=model_id)[0]


def _check_max_tokens(value: int | None, limit: int) -> None:
    if value is not None and value > limit:
        message = f"must be at most {limit} on this service"
        raise ProblemError(
            400, "invalid_value", f"max_tokens: {message}", errors=[FieldError(field="max_tokens", message=message)]
        )


def _knobs(body: ChatCompletionRequest | CompletionRequest, max_tokens: int | None) -> dict[str, Any]:
    return {
        "max_tokens": max_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "n": body.n,
        "stop": body.stop_list(),
        "seed": body.seed,
    }


async def _resolve(request: Request, session: SessionDep, tenant: Tenant, model: str) -> dict[str, Any]:
    settings = request.app.state.settings
    _, spec = await run_in_threadpool(find_model, session=session, tenant=tenant, settings=settings, model_id=model)
    return spec


def _record(request: Request, tenant: Tenant, model: str, tokens: dict[str, int]) -> None:
    with request.app.state.session_factory() as session:
        record_usage(
            session=session,
            tenant_id=tenant.id,
            model=model,
            prompt_tokens=tokens["prompt_tokens"],
            completion_tokens=tokens["completion_tokens"],
        )


async def _streamed(
    request: Request, tenant: Tenant, model: str, chunks: AsyncIterator[bytes], done: dict[str, Any], slot: ExitStack
) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        slot.close()
        if "usage" in done:
            await run_in_threadpool(_record, request, tenant, model, done["usage"])


@router.post("/chat/completions", response_model=ChatCompletion, responses={**_STREAM, **_ERRORS})
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, session: SessionDep, tenant: CurrentTenant
) -> Any:
    """OpenAI's chat completions: messages rendered with the model's chat template; `stream: true` sends
    chat.completion.chunk server-sent events ending with `data: [DONE]`."""
    settings, proxy = request.app.state.settings, request.app.state.inference
    max_tokens = body.max_completion_tokens or body.max_tokens
    _check_max_tokens(max_tokens, settings.max_new_tokens_limit)
    spec = await _resolve(request, session, tenant, body.model)
    payload = {
        "model": spec,
        "messages": [{"role": m.role, "content": m.text()} for m in body.messages],
        "logprobs": (body.top_logprobs or 0) if body.logprobs else None,
        **_knobs(body, max_tokens),
    }
    slot = ExitStack()
    slot.enter_context(request.app.state.inference_limiter.admit(tenant.id))
    if not body.stream:
        with slot:
            result = await proxy.generate(payload)
        await run_in_threadpool(_record, request, tenant, body.model, result["usage"])
        return openai_format.chat_completion(body.model, result)
    try:
        events = await proxy.stream(payload)
    except BaseException:
        slot.close()
        raise
    done: dict[str, Any] = {}
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    chunks = openai_format.chat_stream(body.model, body.n, events, include_usage, done)
    return StreamingResponse(_streamed(request, tenant, body.model, chunks, done, slot), media_type="text/event-stream")


@router.post("/completions", response_model=Completion, responses={**_STREAM, **_ERRORS})
async def create_completion(
    body: CompletionRequest, request: Request, session: SessionDep, tenant: CurrentTenant
) -> Any:
    """OpenAI's (legacy) completions: a prompt string (or a list, not streamed), `echo`, `logprobs` as
    the parallel token lists; `stream: true` sends text_completion server-sent events and [DONE]."""
    settings, proxy = request.app.state.settings, request.app.state.inference
    _check_max_tokens(body.max_tokens, settings.max_new_tokens_limit)
    spec = await _resolve(request, session, tenant, body.model)
    base = {"model": spec, "logprobs": body.logprobs, "echo": body.echo, **_knobs(body, body.max_tokens)}
    prompts = body.prompts()
    slot = ExitStack()
    slot.enter_context(request.app.state.inference_limiter.admit(tenant.id))
    if not body.stream:
        with slot:  # several prompts go concurrently: the worker batches them together
            results = await asyncio.gather(*(proxy.generate({**base, "prompt": p}) for p in prompts))
        tokens = {k: sum(r["usage"][k] for r in results) for k in ("prompt_tokens", "completion_tokens")}
        await run_in_threadpool(_record, request, tenant, body.model, tokens)
        return openai_format.completion(body.model, prompts, list(results), body.n, body.echo)
    try:
        events = await proxy.stream({**base, "prompt": prompts[0]})
    except BaseException:
        slot.close()
        raise
    done: dict[str, Any] = {}
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    chunks = openai_format.completion_stream(body.model, prompts[0], body.echo, events, include_usage, done)
    return StreamingResponse(_streamed(request, tenant, body.model, chunks, done, slot), media_type="text/event-stream")


@router.get("/inference/usage", response_model=InferenceUsagePage)
def read_inference_usage(
    session: SessionDep, tenant: CurrentTenant, since: datetime | None = None
) -> InferenceUsagePage:
    """Requests and tokens of this tenant on the inference routes, per model (since a time, if given)."""
    rows = usage_totals(session=session, tenant_id=tenant.id, since=since)
    return InferenceUsagePage(data=[InferenceUsageRow(**row) for row in rows])
