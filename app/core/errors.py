"""One error shape everywhere: RFC 9457 problem details, plus the invalid fields.

{"type": "https://grpo.dev/problems/validation-error", "title": "Invalid request", "status": 422,
 "detail": "...", "code": "validation_error", "errors": [{"field": "grpo.group_size", "message": "..."}]}
"""

import json
import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.sanitize import SafeText

logger = logging.getLogger(__name__)

PROBLEM_BASE = "https://grpo.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    field: SafeText = Field(
        ..., description="Dotted path of the offending field, e.g. 'grpo.group_size' or 'rows[3].answer'."
    )
    message: SafeText
    type: SafeText = Field(
        "invalid", description="Machine-readable kind of failure, e.g. 'missing', 'greater_than_equal'."
    )


class Problem(BaseModel):
    """An RFC 9457 problem document: every error this service sends has this shape."""

    type: str = Field(..., description="A URI naming the kind of problem.")
    title: SafeText = Field(..., description="A short summary of the kind of problem.")
    status: int = Field(..., description="The HTTP status code.")
    detail: SafeText = Field(..., description="What went wrong in this request, for people.")
    code: str = Field(..., description="Machine-readable kind, e.g. 'validation_error', 'quota_exceeded'.")
    errors: list[FieldError] = Field(default_factory=list, description="The invalid fields, when there are any.")
    request_id: str | None = Field(None, description="This request's id (also the X-Request-ID header).")


class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.title = title or code.replace("_", " ").capitalize()
        self.errors = errors or []
        self.headers = headers or {}


def problem_body(status: int, code: str, title: str, detail: str, request_id: str | None) -> bytes:
    """A problem document as bytes, for the middleware that answers outside FastAPI's handlers."""
    problem = Problem(
        type=PROBLEM_BASE + code.replace("_", "-"),
        title=title,
        status=status,
        detail=detail,
        code=code,
        request_id=request_id,
    )
    return json.dumps(problem.model_dump()).encode()


def spec_error(field: str, message: str, *, type_: str = "invalid") -> ProblemError:
    return ProblemError(
        422,
        "validation_error",
        f"{field}: {message}",
        title="Invalid request",
        errors=[FieldError(field=field, message=message, type=type_)],
    )


def not_found(resource: str) -> ProblemError:
    return ProblemError(404, "not_found", f"{resource} not found", title="Not found")


def _field_path(loc: tuple[Any, ...], body: Any) -> str:
    """'grpo.group_size' / 'rewards[0].weight' from a pydantic location.

    Pydantic puts a discriminated union's tag into the location (rewards.0.exact_match.weight); such a
    segment is never the last one and is not a key of the input at that level, so walking the body
    alongside the location tells it apart from a real field.
    """
    source = loc[0] if loc else "body"
    parts = list(loc[1:]) if source in ("body", "query", "path", "header", "cookie") else list(loc)
    if source == "body" and len(parts) <= 1 and not isinstance(body, dict):
        return "body"  # the body as a whole has the wrong shape (the one part would be a union's tag)
    node = body if source == "body" else None
    path = ""
    for position, part in enumerate(parts):
        is_last = position == len(parts) - 1
        if isinstance(part, int):
            path += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if isinstance(node, dict) and part not in node and not is_last:
            continue  # a union tag, not a field
        path += f".{part}" if path else str(part)
        node = node.get(part) if isinstance(node, dict) else None
    return path or source


def is_openai_route(path: str) -> bool:
    """The OpenAI-compatible routes answer errors as OpenAI does; everything else with problem+json."""
    return path in ("/v1/models", "/v1/chat/completions", "/v1/completions") or path.startswith("/v1/models/")


def openai_error_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    """`{"error": {message, type, param, code}}`, as the `openai` SDK reads it; a 422 becomes OpenAI's 400."""
    status = 400 if problem.status == 422 else problem.status
    kinds = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
    kind = kinds.get(status, "server_error" if status >= 500 else "invalid_request_error")
    param = problem.errors[0].field if problem.errors and problem.errors[0].field != "body" else None
    body = {"error": {"message": problem.detail, "type": kind, "param": param, "code": problem.code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _respond(request: Request, problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    problem.request_id = getattr(request.state, "request_id", None)
    if is_openai_route(request.url.path):
        return openai_error_response(problem, headers)
    return JSONResponse(
        problem.model_dump(), status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    problem = Problem(
        type=PROBLEM_BASE + exc.code.replace("_", "-"),
        title=exc.title,
        status=exc.status,
        detail=exc.detail,
        code=exc.code,
        errors=exc.errors,
    )
    return _respond(request, problem, exc.headers)


def _not_json(request: Request, exc: RequestValidationError) -> bool:
    """A JSON body route that got a body it could not read as JSON because of its Content-Type."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # The body reached validation as raw bytes (not parsed): every error is about the body as a whole, or
    # about the first member of a union body (POST /v1/jobs takes a spec or a reproduce request).
    raw = isinstance(exc.body, bytes | str)
    unread = raw and any(
        tuple(err.get("loc", ()))[:1] == ("body",) and err.get("type") != "missing" for err in exc.errors()
    )
    return unread and not (media_type == "application/json" or media_type.endswith("+json"))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if _not_json(request, exc):
        got = request.headers.get("content-type") or "none"
        problem = Problem(
            type=PROBLEM_BASE + "unsupported-media-type",
            title="Unsupported media type",
            status=415,
            detail=f"the body must be JSON: send Content-Type: application/json (got {got})",
            code="unsupported_media_type",
            errors=[FieldError(field="Content-Type", message=f"expected application/json, got {got}", type="media")],
        )
        return _respond(request, problem)
    errors = [
        FieldError(
            field=_field_path(tuple(err.get("loc", ())), exc.body),
            message=err.get("msg", ""),
            type=err.get("type", ""),
        )
        for err in exc.errors()
    ]
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    problem = Problem(
        type=PROBLEM_BASE + "validation-error",
        title="Invalid request",
        status=422,
        detail=detail,
        code="validation_error",
        errors=errors,
    )
    return _respond(request, problem)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "payload_too_large",
        415: "unsupported_media_type",
        429: "rate_limited",
    }
    code = codes.get(exc.status_code, f"http_{exc.status_code}")
    problem = Problem(
        type=PROBLEM_BASE + code.replace("_", "-"),
        title=code.replace("_", " ").capitalize(),
        status=exc.status_code,
        detail=str(exc.detail),
        code=code,
    )
    return _respond(request, problem, dict(exc.headers or {}))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Normally RequestContextMiddleware answers first; this covers an app built without it.
    request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
    logger.error("unhandled error", extra={"request_id": request_id}, exc_info=exc)
    problem = Problem(
        type=PROBLEM_BASE + "internal-error",
        title="Internal server error",
        status=500,
        detail=f"An unexpected error occurred; quote request id {request_id} when reporting it.",
        code="internal_error",
    )
    return _respond(request, problem)


# Lost-dependency errors: the database or the broker went away mid-request (a restart, a network cut).
# These are the service's outage, not the request's fault and not a bug: 503 with Retry-After, on every
# route, and the driver's text (which may hold SQL) stays in the log.
DATABASE_RETRY_AFTER_S = 5
QUEUE_RETRY_AFTER_S = 30


def outage_exceptions() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """(database errors, broker errors) that mean a lost dependency."""
    from kombu.exceptions import OperationalError as BrokerOperationalError
    from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    broker: list[type[Exception]] = [BrokerOperationalError]
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        broker += [RedisConnectionError, RedisTimeoutError]
    except ImportError:  # redis is optional (the SQLAlchemy broker needs none)
        pass
    return (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError), tuple(broker)


async def _outage_error(request: Request, exc: Exception) -> JSONResponse:
    database, _ = outage_exceptions()
    if isinstance(exc, database):
        code, what, retry_after = "database_unavailable", "The database", DATABASE_RETRY_AFTER_S
    else:
        code, what, retry_after = "queue_unavailable", "The job queue", QUEUE_RETRY_AFTER_S
    logger.warning("%s during %s %s: %s", code, request.method, request.url.path, type(exc).__name__, exc_info=exc)
    problem = Problem(
        type=PROBLEM_BASE + code.replace("_", "-"),
        title="Service unavailable",
        status=503,
        detail=f"{what} is unavailable right now. Retry later (a create with the same Idempotency-Key).",
        code=code,
    )
    return _respond(request, problem, {"Retry-After": str(retry_after)})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem_error)
    for outage in [cls for group in outage_exceptions() for cls in group]:
        app.add_exception_handler(outage, _outage_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
