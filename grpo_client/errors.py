"""Typed errors: every non-2xx answer becomes an ApiError subclass carrying the server's problem document."""

from typing import ClassVar

from grpo_client.models import Problem


class GrpoError(Exception):
    """Base of everything this client raises."""


class ApiError(GrpoError):
    """The service answered with an error. `problem` is its RFC 9457 document (type, title, status,
    detail, code, errors naming the invalid fields, request_id to quote when reporting)."""

    status_code: ClassVar[int | None] = None

    def __init__(self, problem: Problem, *, retry_after_s: float | None = None) -> None:
        self.problem = problem
        self.retry_after_s = retry_after_s
        fields = "; ".join(f"{error.field}: {error.message}" for error in problem.errors)
        detail = problem.detail if not fields or fields in problem.detail else f"{problem.detail} ({fields})"
        super().__init__(f"{problem.status} {problem.code}: {detail}")

    @property
    def code(self) -> str:
        return self.problem.code

    @property
    def request_id(self) -> str | None:
        return self.problem.request_id


class BadRequest(ApiError):
    status_code = 400


class Unauthorized(ApiError):
    status_code = 401


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    """409: e.g. an Idempotency-Key reused with another body, a job already finished, a name taken."""

    status_code = 409


class PayloadTooLarge(ApiError):
    status_code = 413


class UnsupportedMediaType(ApiError):
    status_code = 415


class InvalidRequest(ApiError):
    """422: `problem.errors` names each invalid field."""

    status_code = 422


class RateLimited(ApiError):
    """429: over a quota; raised once the client's retries (honouring Retry-After) are used up."""

    status_code = 429


class ServerError(ApiError):
    """5xx other than 503; `request_id` identifies the failure in the server's logs."""


class ServiceUnavailable(ServerError):
    status_code = 503


class ApiConnectionError(GrpoError):
    """The service could not be reached (after retries, for requests that are safe to retry)."""


class JobFailed(GrpoError):
    """wait() saw the job end in 'failed' or 'cancelled'."""

    def __init__(self, job: object, status: str, message: str) -> None:
        self.job = job
        self.status = status
        super().__init__(message)


_BY_STATUS = {cls.status_code: cls for cls in ApiError.__subclasses__() if cls.status_code is not None}
_BY_STATUS[503] = ServiceUnavailable


def error_for(problem: Problem, retry_after_s: float | None = None) -> ApiError:
    cls = _BY_STATUS.get(problem.status) or (ServerError if problem.status >= 500 else ApiError)
    return cls(problem, retry_after_s=retry_after_s)
