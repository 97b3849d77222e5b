"""Worker results -> OpenAI response objects and stream chunks (chat.completion, text_completion).

The worker reports each generated token as {token, logprob, top: [[token, logprob], ...]}; chat shapes
them as `logprobs.content`, completions as the legacy parallel lists with text offsets.
"""

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from app.schemas.openai import ChatCompletion, Completion, Usage


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    return Usage(
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
    )


def chat_logprobs(entries: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    if entries is None:
        return None

    def one(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    content = [{**one(e["token"], e["logprob"]), "top_logprobs": [one(t, v) for t, v in e["top"]]} for e in entries]
    return {"content": content, "refusal": None}


def completion_logprobs(
    entries: list[dict[str, Any]] | None, start_offset: int, first_is_null: bool = False
) -> dict[str, Any] | None:
    if entries is None:
        return None
    offsets, position = [], start_offset
    for entry in entries:
        offsets.append(position)
        position += len(entry["token"])
    token_logprobs: list[float | None] = [e["logprob"] for e in entries]
    top: list[dict[str, float] | None] = [dict(e["top"]) for e in entries]
    if first_is_null and entries:  # the prompt's first token has no log-prob (nothing precedes it)
        token_logprobs[0], top[0] = None, None
    return {
        "tokens": [e["token"] for e in entries],
        "token_logprobs": token_logprobs,
        "top_logprobs": top,
        "text_offset": offsets,
    }


def chat_completion(model: str, result: dict[str, Any]) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": new_id("chatcmpl"),
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": c["index"],
                    "message": {"role": "assistant", "content": c["text"], "refusal": None},
                    "finish_reason": c["finish_reason"],
                    "logprobs": chat_logprobs(c["logprobs"]),
                }
                for c in result["choices"]
            ],
            "usage": usage(**result["usage"]),
        }
    )


def completion(model: str, prompts: list[str], results: list[dict[str, Any]], n: int, echo: bool) -> Completion:
    """One Completion for several prompts: choice index = prompt index * n + choice (as OpenAI numbers them)."""
    choices = []
    for p, (prompt, result) in enumerate(zip(prompts, results, strict=True)):
        for c in result["choices"]:
            text = (prompt + c["text"]) if echo else c["text"]
            logprobs = None
            if c["logprobs"] is not None:
                echoed = result.get("prompt_logprobs") if echo else None
                entries = (echoed or []) + c["logprobs"]
                logprobs = completion_logprobs(entries, 0, first_is_null=bool(echoed))
            choices.append(
                {"index": p * n + c["index"], "text": text, "finish_reason": c["finish_reason"], "logprobs": logprobs}
            )
    prompt_tokens = sum(r["usage"]["prompt_tokens"] for r in results)
    completion_tokens = sum(r["usage"]["completion_tokens"] for r in results)
    return Completion.model_validate(
        {
            "id": new_id("cmpl"),
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": usage(prompt_tokens, completion_tokens),
        }
    )


def sse(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


async def chat_stream(
    model: str, n: int, events: AsyncIterator[dict[str, Any]], include_usage: bool, done: dict[str, Any]
) -> AsyncIterator[bytes]:
    """chat.completion.chunk events: a role chunk per choice, content deltas, a finish chunk per choice,
    the usage chunk when asked for, then [DONE]. `done` receives the worker's final event (usage)."""
    base = {
        "id": new_id("chatcmpl"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
    }

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
        return sse(
            {**base, "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}
        )

    for index in range(n):
        yield chunk(index, {"role": "assistant", "content": ""})
    async for event in events:
        if event["type"] == "delta":
            yield chunk(
                event["index"],
                {"content": event["text"]},
                logprobs=chat_logprobs(event["logprobs"]) if event["logprobs"] else None,
            )
        elif event["type"] == "done":
            done.update(event)
            for c in event["choices"]:
                yield chunk(c["index"], {}, c["finish_reason"])
            if include_usage:
                yield sse({**base, "choices": [], "usage": usage(**event["usage"]).model_dump()})
        else:
            yield sse({"error": event["error"]})
            return
    yield sse("[DONE]")


async def completion_stream(
    model: str,
    prompt: str,
    echo: bool,
    events: AsyncIterator[dict[str, Any]],
    include_usage: bool,
    done: dict[str, Any],
) -> AsyncIterator[bytes]:
    base = {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
    }
    offsets: dict[int, int] = {}

    def chunk(index: int, text: str, finish: str | None = None, logprobs: Any = None) -> bytes:
        return sse({**base, "choices": [{"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}]})

    async for event in events:
        if event["type"] == "delta":
            index = event["index"]
            if echo and index not in offsets:
                yield chunk(index, prompt)
            start = offsets.setdefault(index, len(prompt) if echo else 0)
            logprobs = completion_logprobs(event["logprobs"], start) if event["logprobs"] else None
            offsets[index] = start + len(event["text"])
            yield chunk(index, event["text"], logprobs=logprobs)
        elif event["type"] == "done":
            done.update(event)
            for c in event["choices"]:
                if echo and c["index"] not in offsets:  # a choice that produced nothing still echoes
                    yield chunk(c["index"], prompt)
                yield chunk(c["index"], "", c["finish_reason"])
            if include_usage:
                yield sse({**base, "choices": [], "usage": usage(**event["usage"]).model_dump()})
        else:
            yield sse({"error": event["error"]})
            return
    yield sse("[DONE]")
