"""Dynamic batching: requests that arrive together run as one decode batch on the engine thread.

One thread owns torch and the model cache. It takes the oldest waiting request, then keeps collecting
for up to `window_s` (or until `max_rows` completion rows are gathered); the requests for the same model
as the oldest one run together in one `decode_batch`, the others wait for the next round, first in line.
Requests that arrive while a batch decodes wait for the next batch (this is dynamic batching, not
continuous batching: a running batch is not joined mid-decode). Results go back to each request's
asyncio queue through its event loop, token by token, so streaming needs no other channel.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from workers.inference.cache import ModelCache, ModelSource, ModelUnavailable
from workers.inference.decode import DecodeRequest, RowState, TokenInfo, decode_batch, prompt_logprobs

logger = logging.getLogger(__name__)


class RequestError(Exception):
    """A request the engine refuses, in OpenAI's terms (status, message, param, code)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass
class Work:
    """One request as the engine thread sees it; `events` receives dicts (delta, done, error)."""

    model_key: str
    resolve: Callable[[], ModelSource]
    render: Callable[[Any], list[int]]  # tokenizer -> prompt token ids
    params: DecodeRequest  # prompt_ids filled in on the engine thread
    echo_logprobs: bool
    events: asyncio.Queue[dict[str, Any]]
    loop: asyncio.AbstractEventLoop
    arrived: float = field(default_factory=time.monotonic)

    def emit(self, event: dict[str, Any]) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the request's event loop is gone (server shutting down): nobody to tell
            pass


def _logprob_entries(infos: list[TokenInfo]) -> list[dict[str, Any]]:
    return [{"token": i.token, "logprob": i.logprob, "top": [[t, v] for t, v in i.top]} for i in infos]


class Batcher:
    def __init__(self, cache: ModelCache, *, max_rows: int = 32, window_s: float = 0.005) -> None:
        self.cache = cache
        self.max_rows = max_rows
        self.window_s = window_s
        self._incoming: queue.Queue[Work] = queue.Queue()
        self._waiting: list[Work] = []  # collected but left for a later batch (another model)
        self.batches = 0
        self.requests = 0
        self.rows = 0
        self._thread = threading.Thread(target=self._run, name="inference-engine", daemon=True)
        self._thread.start()

    def submit(self, work: Work) -> None:
        self._incoming.put(work)

    def stats(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "requests": self.requests,
            "mean_rows_per_batch": self.rows / self.batches if self.batches else 0.0,
            "waiting": self._incoming.qsize() + len(self._waiting),
            "cache": {
                "models": self.cache.keys(),
                "used_bytes": self.cache.used_bytes,
                "budget_bytes": self.cache.budget,
                "loads": self.cache.loads,
                "evictions": self.cache.evictions,
            },
        }

    def _collect(self) -> list[Work]:
        pending = self._waiting or [self._incoming.get()]
        self._waiting = []
        deadline = time.monotonic() + self.window_s
        while sum(w.params.n for w in pending) < self.max_rows:
            try:
                pending.append(self._incoming.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        key = pending[0].model_key
        batch, rows = [], 0
        for work in pending:
            if work.model_key == key and (not batch or rows + work.params.n <= self.max_rows):
                batch.append(work)
                rows += work.params.n
            else:
                self._waiting.append(work)
        return batch

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            batch = self._collect()
            try:
                self._run_batch(batch)
            except Exception as error:  # a bug must not kill the engine thread: fail this batch only
                logger.exception("inference batch failed")
                for work in batch:
                    work.emit(
                        {"type": "error", "status": 500, **RequestError(500, f"inference failed: {error}").body()}
                    )

    def _run_batch(self, batch: list[Work]) -> None:
        try:
            source = batch[0].resolve()
        except RequestError as error:
            for work in batch:
                work.emit({"type": "error", "status": error.status, **error.body()})
            return
        try:
            with self.cache.use(source) as loaded:
                ready = [work for work in batch if self._prepare(work, loaded.tokenizer, loaded.max_positions)]
                if not ready:
                    return
                self.batches += 1
                self.requests += len(ready)
                self.rows += sum(w.params.n for w in ready)

                def on_delta(r: int, choice: int, text: str, infos: list[TokenInfo]) -> None:
                    ready[r].emit({"type": "delta", "index": choice, "text": text, "logprobs": _logprob_entries(infos)})

                results = decode_batch(loaded.module, loaded.tokenizer, [w.params for w in ready], on_delta)
                for work, rows in zip(ready, results, strict=True):
                    echo = (
                        prompt_logprobs(
                            loaded.module, loaded.tokenizer, work.params.prompt_ids, work.params.top_logprobs or 0
                        )
                        if work.echo_logprobs
                        else None
                    )
                    work.emit(_done(work, rows, echo))
        except ModelUnavailable as error:
            for work in batch:
                work.emit(
                    {
                        "type": "error",
                        "status": 404,
                        **RequestError(404, str(error), param="model", code="model_not_found").body(),
                    }
                )

    def _prepare(self, work: Work, tokenizer: Any, max_positions: int) -> bool:
        """Tokenize the prompt and check it fits; False (after an error event) when it cannot run."""
        try:
            ids = work.render(tokenizer)
            if not ids:
                raise RequestError(400, "the prompt is empty after tokenization", param="prompt")
            if work.params.max_tokens is None or work.params.max_tokens <= 0:
                work.params.max_tokens = max(1, max_positions - len(ids))
            if len(ids) + work.params.max_tokens > max_positions:
                raise RequestError(
                    400,
                    f"this model's maximum context length is {max_positions} tokens; the prompt has {len(ids)} "
                    f"and max_tokens asks for {work.params.max_tokens}",
                    param="max_tokens",
                    code="context_length_exceeded",
                )
        except RequestError as error:
            work.emit({"type": "error", "status": error.status, **error.body()})
            return False
        work.params.prompt_ids = ids
        return True


def _done(work: Work, rows: list[RowState], echo: list[TokenInfo] | None) -> dict[str, Any]:
    return {
        "type": "done",
        "choices": [
            {
                "index": c,
                "text": row.text,
                "finish_reason": row.finish_reason or "length",
                "logprobs": _logprob_entries(row.tokens) if work.params.top_logprobs is not None else None,
            }
            for c, row in enumerate(rows)
        ],
        "prompt_logprobs": _logprob_entries(echo) if echo is not None else None,
        "usage": {
            "prompt_tokens": len(work.params.prompt_ids),
            "completion_tokens": sum(len(row.ids) for row in rows),
        },
        "queue_s": time.monotonic() - work.arrived,
    }
