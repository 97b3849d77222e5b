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

from app.core.errors import ProblemError, _field_path

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
                field = _field_path(tuple(first.get("loc", ())), exc.body)
                return openai_error(
                    400, f"{field}: {first.get('msg', '')}", code="invalid_request", param=_param(field)
                )
            except HTTPException as exc:
                return openai_error(exc.status_code, str(exc.detail), code=f"http_{exc.status_code}")

        return handle
