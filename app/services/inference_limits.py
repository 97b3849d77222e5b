"""Per-tenant limits on the inference routes: a request rate (token bucket) and requests in flight.

In-process state, so the limits hold per API process (one process in the embedded default; with N
replicas a tenant gets up to N times the rate). Over either limit: 429 with Retry-After, which the
`openai` SDK honours before its retries.
"""

import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from app.core.errors import ProblemError


@dataclass
class _Bucket:
    tokens: float
    updated: float
    in_flight: int = 0


@dataclass
class InferenceLimiter:
    requests_per_minute: int
    max_concurrent: int
    _buckets: dict[uuid.UUID, _Bucket] = field(default_factory=dict)

    def _now(self) -> float:
        return time.monotonic()

    @contextmanager
    def admit(self, tenant_id: uuid.UUID) -> Iterator[None]:
        """Hold one of the tenant's slots for the request's duration (a stream: until it ends)."""
        now = self._now()
        rate = self.requests_per_minute / 60.0
        bucket = self._buckets.setdefault(tenant_id, _Bucket(tokens=float(self.requests_per_minute), updated=now))
        bucket.tokens = min(float(self.requests_per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.in_flight >= self.max_concurrent:
            raise _limited(f"at most {self.max_concurrent} inference requests at once per tenant", 1)
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) / rate)
            raise _limited(f"at most {self.requests_per_minute} inference requests per minute per tenant", wait)
        bucket.tokens -= 1.0
        bucket.in_flight += 1
        try:
            yield
        finally:
            bucket.in_flight -= 1


def _limited(message: str, retry_after_s: int) -> ProblemError:
    return ProblemError(
        429, "rate_limit_exceeded", f"Rate limit reached: {message}.", headers={"Retry-After": str(retry_after_s)}
    )
