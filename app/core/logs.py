"""Structured logs: one JSON object per line, carrying the request id and the job id of the work at hand.

The ids travel in a context variable holding a small dict: the API's request middleware starts one
per request (request id), routes and services add the job id once they know it, the worker starts one
per task (job id); a filter copies them onto every record, so a library's log line emitted while
serving a request or training a job carries them too. The dict is shared with the threads a request
runs in (they get a copy of the context, which points at the same dict), so an id bound there is seen
by the access log line the middleware writes at the end.
"""

import logging
from contextvars import ContextVar, Token

from pythonjsonlogger.json import JsonFormatter

from app.core.sanitize import safe_text

LOG_FIELDS = ("request_id", "job_id")
_context: ContextVar[dict[str, str] | None] = ContextVar("grpo_log_context", default=None)


def new_log_context(**fields: str) -> Token[dict[str, str] | None]:
    """Start a fresh context (a request, a task); pass the token to reset_log_context when done."""
    return _context.set(dict(fields))


def reset_log_context(token: Token[dict[str, str] | None]) -> None:
    _context.reset(token)


def bind_log_context(**fields: str) -> None:
    """Add ids to the current context (e.g. the job id once a route has found the job)."""
    current = _context.get()
    if current is None:
        _context.set(dict(fields))
    else:
        current.update(fields)


def log_context() -> dict[str, str]:
    return dict(_context.get() or {})


_HANDLER_MARK = "_grpo_handler"
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s job=%(job_id)s] %(message)s"


class ContextFilter(logging.Filter):
    """Adds request_id and job_id to every record (an explicit `extra=` wins over the context)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get() or {}
        for field in LOG_FIELDS:
            if getattr(record, field, None) is None:
                setattr(record, field, context.get(field))
        return True


class SafeFormatter(logging.Formatter):
    """Escapes what a log line must not carry to a terminal or a log shipper (NUL, ANSI escapes, lone
    surrogates: user text in reward errors ends up in log lines too), after `inner` formatted it."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return safe_text(self.inner.format(record))


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}{request_id}{job_id}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def configure_logging(*, level: str = "INFO", fmt: str = "json") -> None:
    """Route the root logger (and uvicorn's and Celery's loggers, through it) to one stderr handler.

    uvicorn's access logger is turned off: the API's middleware writes the one access line per request.

    Idempotent: calling it again replaces the handler it installed before. fmt='none' leaves logging
    as it is (tests, or an embedding application that configures logging itself).
    """
    if fmt == "none":
        return
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    setattr(handler, _HANDLER_MARK, True)
    handler.addFilter(ContextFilter())
    handler.setFormatter(SafeFormatter(json_formatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT)))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # The app writes its own access line (request id, route, duration); uvicorn's would be a second one.
    logging.getLogger("uvicorn.access").disabled = True
