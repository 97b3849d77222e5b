"""Budgets: usage summed per step on the job, checked against the job's budget (spec `budget`) and its
tenant's (all the tenant's jobs together). The worker calls record_usage and crossed after every step
and pauses the job on a crossing; resume refuses while a budget is still used up. Owns its commits.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.core.errors import FieldError, ProblemError
from app.models import Job, Tenant
from app.schemas.budget import BUDGET_NAMES, Budget, JobUsage

# Step metric (workers/engine/metrics.py) -> the job column it adds to.
STEP_USAGE = {
    "time/step_s": Job.usage_wall_clock_s,
    "time/device_s": Job.usage_device_s,
    "usage/tokens_sampled": Job.usage_generated_tokens,
    "usage/prompt_tokens": Job.usage_prompt_tokens,
    "usage/tokens_trained": Job.usage_trained_tokens,
    "usage/reward_calls": Job.usage_reward_calls,
    "time/scoring_s": Job.usage_reward_s,
}
# Budget name -> how the usage figure is read off the job columns (device-hours from device-seconds).
BUDGETED = {
    "wall_clock_s": Job.usage_wall_clock_s,
    "device_hours": Job.usage_device_s / 3600.0,
    "generated_tokens": Job.usage_generated_tokens,
    "reward_calls": Job.usage_reward_calls,
    "reward_seconds": Job.usage_reward_s,
}
assert set(BUDGETED) == set(BUDGET_NAMES)


@dataclass(frozen=True)
class Crossing:
    scope: str  # "job" or "tenant"
    budget: str  # a Budget field
    limit: float
    used: float

    @property
    def message(self) -> str:
        whose = "the job's" if self.scope == "job" else "the tenant's"
        return f"{whose} {self.budget} budget of {self.limit:g} is used up ({self.used:.6g} used)"

    def data(self) -> dict[str, Any]:
        return {"scope": self.scope, "budget": self.budget, "limit": self.limit, "used": self.used}


def job_usage(job: Job) -> JobUsage:
    return JobUsage(
        wall_clock_s=job.usage_wall_clock_s or 0.0,
        device_hours=(job.usage_device_s or 0.0) / 3600.0,
        generated_tokens=round(job.usage_generated_tokens or 0),
        prompt_tokens=round(job.usage_prompt_tokens or 0),
        trained_tokens=round(job.usage_trained_tokens or 0),
        reward_calls=round(job.usage_reward_calls or 0),
        reward_seconds=job.usage_reward_s or 0.0,
    )


def record_usage(*, session: Session, job_id: uuid.UUID, worker_id: str, metrics: dict[str, float]) -> None:
    """Add one step's usage to the job (only its owning worker writes, so no lost update)."""
    values = {column.key: column + float(metrics.get(name, 0.0)) for name, column in STEP_USAGE.items()}
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def _first_crossing(scope: str, budget: Budget, used: dict[str, float]) -> Crossing | None:
    for name in BUDGET_NAMES:
        limit = getattr(budget, name)
        if limit is not None and used[name] >= limit:
            return Crossing(scope=scope, budget=name, limit=float(limit), used=used[name])
    return None


def crossed(*, session: Session, job_id: uuid.UUID) -> Crossing | None:
    """The first budget of the job, then of its tenant, that its usage has reached; None if none."""
    job = session.get(Job, job_id)
    if job is None:
        return None
    session.refresh(job)  # the budget may have been raised by the API since this session read it
    columns = list(BUDGETED.values())
    own = session.execute(select(*columns).where(Job.id == job_id)).one()
    crossing = _first_crossing(
        "job", Budget.model_validate(job.spec.get("budget") or {}), dict(zip(BUDGETED, own, strict=True))
    )
    if crossing is not None:
        return crossing
    tenant_budget = session.scalar(select(Tenant.budget).where(Tenant.id == job.tenant_id))
    if not tenant_budget:
        return None
    totals = session.execute(
        select(*(func.coalesce(func.sum(column), 0.0) for column in columns)).where(Job.tenant_id == job.tenant_id)
    ).one()
    return _first_crossing("tenant", Budget.model_validate(tenant_budget), dict(zip(BUDGETED, totals, strict=True)))


def refuse_if_spent(*, session: Session, job_id: uuid.UUID) -> None:
    """409 naming the budget when a resumed job would only pause again after one more step."""
    crossing = crossed(session=session, job_id=job_id)
    if crossing is not None:
        where = "raise it with PATCH /v1/jobs/{id}/budget" if crossing.scope == "job" else "ask the operator"
        field = f"budget.{crossing.budget}" if crossing.scope == "job" else f"tenant.budget.{crossing.budget}"
        raise ProblemError(
            409,
            "budget_exhausted",
            f"{crossing.message}; {where}, then resume",
            errors=[FieldError(field=field, message=crossing.message, type="budget_exhausted")],
        )


def set_job_budget(*, session: Session, job: Job, budget: Budget) -> Job:
    """Replace the job's budget (the worker reads it every step, so a running job sees it at once)."""
    job.spec = {**job.spec, "budget": budget.model_dump(mode="json")}
    session.commit()
    session.refresh(job)
    return job


def set_tenant_budget(*, session: Session, tenant: Tenant, budget: Budget) -> Tenant:
    limits = budget.model_dump(exclude_none=True)
    tenant.budget = limits or None
    session.commit()
    session.refresh(tenant)
    return tenant
