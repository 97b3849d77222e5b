"""ASGI middleware: request context (id, access log, latency, last-resort 500), and a body size cap."""

import logging
import time
import uuid
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PROBLEM_MEDIA_TYPE, problem_body
from app.core.logs import log_context, new_log_context, reset_log_context
from app.core.telemetry import Telemetry

logger = logging.getLogger("app.access")
error_logger = logging.getLogger("app.errors")


def _request_id(scope: Scope) -> str:
    incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
    return incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex


async def send_problem(send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _route_label(scope: Scope) -> str | None:
    """The matched route's template. Routes under a prefix record their full template in the request state
    (app.api.deps); a route matched without running it (a 405) is labelled only if its template is the path's."""
    template = scope.get("state", {}).get("route_template")
    if template:
        return str(template)
    path = getattr(scope.get("route"), "path", None)
    if path and scope["path"].startswith(path.split("{", 1)[0]):
        return str(path)
    return None


class RequestContextMiddleware:
    """Outermost of ours: a request id (X-Request-ID in and out), a log context carrying it, one access
    log line and one latency observation per request, and the 500 problem for anything unhandled:
    its stack trace goes to the log with the request id, the client gets only the id."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry | None = None, access_log: bool = True) -> None:
        self.app = app
        self.telemetry = telemetry
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        token = new_log_context(request_id=request_id)
        started, status = time.perf_counter(), 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_logger.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if not response_started:
                detail = f"An unexpected error occurred; quote request id {request_id} when reporting it."
                body = problem_body(500, "internal_error", "Internal server error", detail, request_id)
                await send_problem(send_with_id, 500, body)
        finally:
            self._record(scope, status, time.perf_counter() - started)
            reset_log_context(token)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = _route_label(scope)
        if self.telemetry is not None:
            self.telemetry.observe_request(scope["method"], route, status, seconds)
        if self.access_log:
            job_id = log_context().get("job_id") or (scope.get("path_params") or {}).get("job_id")
            logger.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "job_id": str(job_id) if job_id else None,
                },
            )


class _BodyTooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """413 when Content-Length says too much, and also when a chunked body grows past the cap."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Routes that stream large bodies and enforce their own, larger limit (dataset uploads).
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, send)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        request_id = scope.get("state", {}).get("request_id")
        detail = f"request body exceeds {self.max_bytes} bytes"
        await send_problem(send, 413, problem_body(413, "payload_too_large", "Payload too large", detail, request_id))
