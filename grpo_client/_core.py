"""What the sync and async clients share: configuration, the request description, retry decisions,
response decoding into models or typed errors, and the Server-Sent Events parser."""

import email.utils
import json
import os
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from grpo_client.errors import ApiConnectionError, error_for
from grpo_client.models import Event, Problem

DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = frozenset({429, 503})
# Errors from which a retry is safe for a request that is idempotent (reads, creates with a key).
TRANSPORT_ERRORS = (
    httpx.ConnectError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.TimeoutException,
)


@dataclass(frozen=True)
class Settings:
    """Where the service is and how to talk to it; the API key and URL default to GRPO_API_KEY / GRPO_URL."""

    base_url: str
    api_key: str
    timeout_s: float = 30.0
    max_retries: int = 4
    backoff_s: float = 0.5  # first wait when the server gives no Retry-After; doubles each retry
    max_wait_s: float = 60.0  # a Retry-After longer than this is not waited out: the error is raised

    @classmethod
    def from_env(cls, base_url: str | None = None, api_key: str | None = None, **options: Any) -> "Settings":
        key = api_key or os.environ.get("GRPO_API_KEY")
        if not key:
            raise ValueError("no API key: pass api_key= or set GRPO_API_KEY")
        return cls(base_url=(base_url or os.environ.get("GRPO_URL") or DEFAULT_URL).rstrip("/"), api_key=key, **options)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "User-Agent": "grpo-client/0.1"}


@dataclass
class Call:
    """One API request. `create=True` adds an Idempotency-Key (one per call, reused by its retries)."""

    method: str
    path: str
    params: dict[str, Any] | list[tuple[str, Any]] | None = None
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    create: bool = False
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        if self.create:
            self.headers.setdefault("Idempotency-Key", self.idempotency_key or uuid.uuid4().hex)

    @property
    def retry_safe(self) -> bool:
        """Whether resending after a lost connection cannot do the work twice."""
        return self.method in ("GET", "HEAD", "DELETE") or "Idempotency-Key" in self.headers

    def request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"params": _clean(self.params), "headers": self.headers}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.content is not None:
            kwargs["content"] = self.content
        return kwargs


def _clean(params: dict[str, Any] | list[tuple[str, Any]] | None) -> Any:
    if params is None:
        return None
    items = params.items() if isinstance(params, dict) else params
    return [(key, _param(value)) for key, value in items if value is not None]


def _param(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After as seconds: an integer, or an HTTP date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def next_wait_s(settings: Settings, attempt: int, *, response: httpx.Response | None) -> float | None:
    """Seconds to wait before retry `attempt` (0-based), or None when the error should be raised now."""
    if attempt >= settings.max_retries:
        return None
    if response is not None:
        if response.status_code not in RETRY_STATUSES:
            return None
        told = retry_after_s(response)
        if told is not None:
            return told if told <= settings.max_wait_s else None
    backoff = settings.backoff_s * 2.0**attempt  # a float power: int ** int is typed Any (negative exponents)
    return min(settings.max_wait_s, backoff * random.uniform(0.5, 1.0))  # jitter: retries do not march in step


def problem_of(response: httpx.Response) -> Problem:
    try:
        return Problem.model_validate(response.json())
    except (ValueError, ValidationError):
        return Problem(status=response.status_code, code=f"http_{response.status_code}", detail=response.text[:500])


def raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    raise error_for(problem_of(response), retry_after_s(response))


def decode(response: httpx.Response, model: Any) -> Any:
    raise_for(response)
    if model is None or response.status_code == 204:
        return None
    return TypeAdapter(model).validate_python(response.json())


def connection_error(call: Call, exc: Exception) -> ApiConnectionError:
    return ApiConnectionError(f"{call.method} {call.path}: {type(exc).__name__}: {exc}")


@dataclass
class SseParser:
    """Feed lines of a text/event-stream; complete events come out. Comments (pings) are skipped."""

    data: list[str] = field(default_factory=list)
    last_id: str | None = None

    def feed(self, line: str) -> Event | None:
        if line == "":
            if not self.data:
                return None
            payload, self.data = "\n".join(self.data), []
            return Event.model_validate(json.loads(payload))
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self.data.append(value)
        elif name == "id":
            self.last_id = value
        return None

    def events(self, lines: Iterable[str]) -> Iterator[Event]:
        for line in lines:
            event = self.feed(line)
            if event is not None:
                yield event
