"""Remote verifier: completions are POSTed in batches to a user's URL (protocol in HttpReward's docstring).

Request  POST <url>  {"reward": "<name>", "items": [{"prompt": str, "completion": str, "row": {...}}, ...]}
Response 200         {"scores": [number | null, ...], "errors": [null | str, ...] (optional)}

Each request has a total deadline of timeout_s (connect, send and the whole body, not per read).
Connection errors, timeouts, 408, 429 and 5xx are retried `retries` times, waiting backoff_s * 2**k
(capped at backoff_max_s; a Retry-After header in seconds wins, within the same cap). Other 4xx and a
wrongly shaped body are not retried: they fail every item of the batch with a message saying why.
"""

import ipaddress
import json
import math
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.schemas.reward import HttpReward
from workers.rewards.components import Leaf, Outcome
from workers.rewards.errors import RewardConfigError

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    pass


def check_public_host(url: str) -> None:
    """Refuse URLs whose host resolves to loopback, private, link-local (cloud metadata) or reserved
    addresses, so a user cannot make the worker call services inside the deployment (SSRF).
    DNS can change between this check and the request; the check narrows, not closes, that gap."""
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise RewardConfigError(f"http reward: cannot resolve host {host!r}: {exc}", param="url") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise RewardConfigError(
                f"http reward: {host!r} resolves to the non-public address {address}; verifiers must be "
                "reachable on the public internet (the service can allow private hosts)",
                param="url",
            )


class HttpLeaf(Leaf):
    def __init__(self, name: str, spec: HttpReward, allow_private: bool = False) -> None:
        super().__init__(name, spec)
        self.url = str(spec.url)
        if not allow_private:
            check_public_host(self.url)
        limits = httpx.Limits(max_connections=spec.max_concurrency, max_keepalive_connections=spec.max_concurrency)
        self._client = httpx.Client(timeout=spec.timeout_s, limits=limits, headers=spec.headers, follow_redirects=False)
        self._executor = ThreadPoolExecutor(max_workers=spec.max_concurrency, thread_name_prefix=f"http-{name}")

    def score(self, prompts: list[str], completions: list[str], rows: list[dict[str, Any]]) -> list[Outcome]:
        size = self.spec.batch_size
        chunks = [range(i, min(i + size, len(completions))) for i in range(0, len(completions), size)]

        def run(chunk: range) -> list[Outcome]:
            items = [{"prompt": prompts[i], "completion": completions[i], "row": rows[i]} for i in chunk]
            return self._score_chunk(items)

        return [outcome for part in self._executor.map(run, chunks) for outcome in part]

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._client.close()

    def _score_chunk(self, items: list[dict[str, Any]]) -> list[Outcome]:
        started = time.perf_counter()
        try:
            scores, errors = self._request_with_retries(items)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a per-item error
            latency = time.perf_counter() - started
            message = f"verifier {self.url}: {exc}"[:1000]
            return [Outcome(error=message, latency_s=latency) for _ in items]
        latency = time.perf_counter() - started
        return [
            Outcome(value=s, latency_s=latency)
            if e is None
            else Outcome(error=f"verifier: {e}"[:1000], latency_s=latency)
            for s, e in zip(scores, errors, strict=True)
        ]

    def _request_with_retries(self, items: list[dict[str, Any]]) -> tuple[list[float | None], list[str | None]]:
        spec, attempt = self.spec, 0
        while True:
            try:
                return self._request(items)
            except _Retryable as exc:
                if attempt >= spec.retries:
                    raise RuntimeError(f"{exc} (after {attempt + 1} attempts)") from None
                delay = getattr(exc, "retry_after", None)
                if delay is None:
                    delay = spec.backoff_s * 2**attempt
                time.sleep(min(delay, spec.backoff_max_s))
                attempt += 1

    def _request(self, items: list[dict[str, Any]]) -> tuple[list[float | None], list[str | None]]:
        deadline = time.monotonic() + self.spec.timeout_s
        body = json.dumps({"reward": self.name, "items": items}, default=str)
        try:
            with self._client.stream(
                "POST", self.url, content=body, headers={"content-type": "application/json"}
            ) as response:
                if response.status_code in RETRY_STATUS:
                    error = _Retryable(f"HTTP {response.status_code}")
                    error.retry_after = _retry_after(response)  # type: ignore[attr-defined]
                    raise error
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.read()[:200]!r}")
                data = _read_body(response, deadline)
        except httpx.TimeoutException:
            raise _Retryable(f"timed out after {self.spec.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"cannot reach the verifier: {type(exc).__name__}: {exc}") from None
        return parse_response(data, len(items))


def _read_body(response: httpx.Response, deadline: float) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("response body too slow")
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise RuntimeError(f"response larger than {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    if time.monotonic() > deadline:
        raise httpx.ReadTimeout("response body too slow")
    return b"".join(chunks)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def parse_response(data: bytes, expected: int) -> tuple[list[float | None], list[str | None]]:
    """Check the verifier's answer; a ValueError message says exactly what is wrong with it."""
    shape = f'expected a JSON object {{"scores": [number | null, ...]}} with {expected} entries'
    try:
        body = json.loads(data)
    except ValueError:
        raise ValueError(f"response is not JSON ({data[:100]!r}); {shape}") from None
    if not isinstance(body, dict) or not isinstance(body.get("scores"), list):
        raise ValueError(f"wrong response shape {str(body)[:100]!r}; {shape}")
    scores, errors = body["scores"], body.get("errors") or [None] * expected
    if len(scores) != expected or not isinstance(errors, list) or len(errors) != expected:
        raise ValueError(f"response has {len(scores)} scores for {expected} items; {shape}")
    checked: list[float | None] = []
    for index, score in enumerate(scores):
        ok = score is None or (isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score))
        if not ok:
            raise ValueError(f"scores[{index}] is {score!r}; {shape}")
        checked.append(None if score is None else float(score))
    return checked, [None if e is None else str(e) for e in errors]
