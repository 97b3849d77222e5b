"""How a failure becomes one of the closed list of job error codes (app/schemas/errors.py).

A failed job's `error.code` is always one of JobErrorCode (it is an enum in the OpenAPI document).
Exceptions name their code with a `code` attribute; anything else, or a code not on the list (a
database driver's internal code such as SQLAlchemy's "9h9h", say), becomes `internal_error` with a
message that holds no driver text, SQL or traceback: those go to the worker's log only.
"""

import logging
from typing import Annotated, Any

from pydantic import BeforeValidator

from app.core.sanitize import safe_text
from app.schemas.errors import JobErrorCode

logger = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 2000


def _known(code: Any) -> JobErrorCode:
    try:
        return JobErrorCode(code)
    except ValueError:
        return JobErrorCode.internal_error


# For reading stored errors: a row written before the list was closed still renders.
JobErrorCodeField = Annotated[JobErrorCode, BeforeValidator(_known)]


def error_from_exception(exc: BaseException) -> dict[str, Any]:
    """A failure as {code, message, param}: the exception's own code and message when it names a listed
    code, else internal_error with a generic message (the details are logged here)."""
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or _known(code) is JobErrorCode.internal_error:
        logger.error("internal error: %s: %s", type(exc).__name__, safe_text(str(exc), 4000))
        return {
            "code": JobErrorCode.internal_error.value,
            "message": "an internal error stopped the work; the worker's log has the details under this id",
            "param": None,
        }
    message = str(exc) or type(exc).__name__
    param = getattr(exc, "param", None)
    return {
        "code": code,
        "message": safe_text(f"{type(exc).__name__}: {message}", MAX_MESSAGE_CHARS),
        "param": safe_text(param) if isinstance(param, str) else None,
    }
