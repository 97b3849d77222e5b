"""The API's side of the inference worker: one pooled HTTP client, errors turned into the API's own.

The API never loads a model: it sends the worker a resolved model spec and the request's knobs, and
relays the answer (JSON) or the worker's token stream (one JSON event per line).
"""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from app.core.config import Settings
from app.core.errors import FieldError, ProblemError


def _unavailable(detail: str) -> ProblemError:
    return ProblemError(503, "inference_unavailable", detail, headers={"Retry-After": "5"})


def _worker_error(response: httpx.Response, body: bytes) -> ProblemError:
    try:
        error = json.loads(body)["error"]
        message, param, code = str(error["message"]), error.get("param"), error.get("code")
    except (ValueError, KeyError, TypeError):
        return _unavailable(f"the inference worker answered {response.status_code} without an error body")
    errors = [FieldError(field=param, message=message, type=code or "invalid")] if param else []
    status = response.status_code if response.status_code < 500 else 502
    return ProblemError(status, code or "invalid_request", message, errors=errors)


class InferenceProxy:
    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        token = settings.inference_token.get_secret_value() if settings.inference_token else None
        self._client = httpx.AsyncClient(
            base_url=settings.inference_url,
            timeout=httpx.Timeout(settings.inference_timeout_s, connect=5.0),
            headers={"Authorization": f"Bearer {token}"} if token else {},
            transport=transport,
        )

    async def generate(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A finished generation: {choices, usage, prompt_logprobs}."""
        try:
            response = await self._client.post("/generate", json={**payload, "stream": False})
        except httpx.TimeoutException:
            raise ProblemError(504, "inference_timeout", "The inference worker did not answer in time.") from None
        except httpx.HTTPError as error:
            raise _unavailable(
                f"The inference worker is not reachable ({type(error).__name__}); retry later."
            ) from None
        if response.status_code != 200:
            raise _worker_error(response, response.content)
        return response.json()  # type: ignore[no-any-return]

    async def stream(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Opens the worker's stream before returning (so a refused request is an HTTP error, not a broken
        stream); then yields its events until 'done' or 'error'."""
        request = self._client.build_request("POST", "/generate", json={**payload, "stream": True})
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException:
            raise ProblemError(504, "inference_timeout", "The inference worker did not answer in time.") from None
        except httpx.HTTPError as error:
            raise _unavailable(
                f"The inference worker is not reachable ({type(error).__name__}); retry later."
            ) from None
        if response.status_code != 200:
            body = await response.aread()
            await response.aclose()
            raise _worker_error(response, body)
        return _events(response)

    async def aclose(self) -> None:
        await self._client.aclose()


async def _events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    try:
        async for line in response.aiter_lines():
            if line.strip():
                yield json.loads(line)
    except httpx.HTTPError as error:
        yield {"type": "error", "error": {"message": f"the inference stream broke: {error}", "type": "server_error"}}
    finally:
        await response.aclose()
