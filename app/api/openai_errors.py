"""OpenAI's error shape for the /v1/files and /v1/fine_tuning routes: {"error": {message, type, param, code}}.

A route class, so only these routers change: everything raised while resolving dependencies, validating
the request or running the endpoint is answered as the `openai` SDK reads it (422 becomes OpenAI's 400),
and conflicts carry `x-should-retry: false` so the SDK does not retry a request that cannot succeed.
"""

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from app.core.errors import ProblemError

logger = logging.getLogger(__name__)
KINDS = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error", 429: "rate_limit_error"}


def openai_error(
    status: int, message: str, *, code: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    status = 400 if status == 422 else status
    kind = KINDS.get(status, "server_error" if status >= 500 else "invalid_request_error")
    headers = dict(headers or {})
    if status == 409:
        headers["x-should-retry"] = "false"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...], body: Any) -> str | None:
    """'method.reinforcement.hyperparameters.n_epochs' from a pydantic location: segments that are not keys
    of the request at that level (union members such as "literal['auto']", "function-after[...]") are left
    out, the last one included; query and form fields are named as they are."""
    if not loc:
        return None
    source, parts = loc[0], list(loc[1:])
    node, path = body if source == "body" else None, ""
    for position, part in enumerate(parts):
        last = position == len(parts) - 1  # a missing field is named although the request lacks it
        if isinstance(part, int):
            path += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
        elif source != "body" or node is None or (isinstance(node, dict) and (part in node or last)):
            path += f".{part}" if path else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return path or (None if source == "body" else str(source))


def _param(field: str | None) -> str | None:
    return None if field in (None, "", "body") else field


class OpenAIRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ProblemError as exc:
                field = exc.errors[0].field if exc.errors else None
                return openai_error(exc.status, exc.detail, code=exc.code, param=_param(field), headers=exc.headers)
            except RequestValidationError as exc:
                first = exc.errors()[0]
                field = _field(tuple(first.get("loc", ())), exc.body)
                return openai_error(
                    400, f"{field}: {first.get('msg', '')}", code="invalid_request", param=_param(field)
                )
            except HTTPException as exc:
                return openai_error(exc.status_code, str(exc.detail), code=f"http_{exc.status_code}")

        return handle
