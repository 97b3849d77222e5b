"""A typed Python client for the GRPO training service (httpx; sync and async).

The API key and URL come from GRPO_API_KEY and GRPO_URL unless given. Creates carry an automatic
Idempotency-Key, so the built-in retries (429/503 honouring Retry-After, lost connections) never
create twice; errors are typed (grpo_client.errors) and carry the server's problem document.
"""

from grpo_client.async_client import AsyncGrpoClient
from grpo_client.client import GrpoClient
from grpo_client.errors import (
    ApiConnectionError,
    ApiError,
    Conflict,
    GrpoError,
    InvalidRequest,
    JobFailed,
    NotFound,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
)
from grpo_client.models import Dataset, Event, Job, Page, Problem, Reward

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "AsyncGrpoClient",
    "Conflict",
    "Dataset",
    "Event",
    "GrpoClient",
    "GrpoError",
    "InvalidRequest",
    "Job",
    "JobFailed",
    "NotFound",
    "Page",
    "Problem",
    "RateLimited",
    "Reward",
    "ServerError",
    "ServiceUnavailable",
    "Unauthorized",
]
