"""Reward definitions: create, version, delete, resolve references from jobs, test on samples.

Testing and dry-running a reward happen on a reward worker, reached over the broker (app/core/queue.py):
graders and user code never run in the API process, which needs no privileges for a sandbox.
"""

import logging
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import FieldError, ProblemError, spec_error
from app.core.queue import RETRY_AFTER_S, RewardRunner
from app.models import Job, JobRewardUse, RewardDefinition, RewardVersion, Tenant
from app.models.base import utcnow
from app.schemas.job import JobStatus
from app.schemas.reward import RewardSample, RewardSpec
from app.schemas.reward_check import RewardCheckError, RewardCheckRequest, RewardValidation
from app.schemas.reward_resource import RewardRef, RewardTestResponse

logger = logging.getLogger(__name__)


def check_reward(
    spec: Any, sample: RewardSample | None, *, runner: RewardRunner, field: str = "spec"
) -> RewardValidation:
    """Build the reward as a job would and, with a sample, dry-run it on that sample (without one,
    reward() is never called: a reward reading row['answer'] cannot work on a made-up empty row).
    Raises a 422 naming the field when it cannot work, a 503 when no sandbox or worker can check it."""
    request = RewardCheckRequest(op="validate", spec=spec.model_dump(mode="json"), sample=sample)
    reply = runner.run(request)
    if reply.error is not None:
        raise _problem(reply.error, field)
    return reply.validation or (RewardValidation.dry_run if sample else RewardValidation.checked)


def _problem(error: RewardCheckError, field: str) -> ProblemError:
    if error.code == "sandbox_unavailable":  # the server's problem, not the caller's reward
        logger.error("reward sandbox unavailable on the worker: %s", error.message)
        return ProblemError(
            503,
            "sandbox_unavailable",
            f"user code cannot be isolated on this server: {error.message}",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return spec_error(f"{field}.{error.param}" if error.param else field, error.message)


def create_reward(
    *,
    session: Session,
    tenant: Tenant,
    name: str,
    description: str,
    spec: RewardSpec,
    sample: RewardSample | None,
    runner: RewardRunner,
) -> tuple[RewardDefinition, RewardValidation]:
    if session.scalar(
        select(RewardDefinition.id).where(RewardDefinition.tenant_id == tenant.id, RewardDefinition.name == name)
    ):
        raise _name_taken(name)
    validation = check_reward(spec, sample, runner=runner)
    reward = RewardDefinition(tenant_id=tenant.id, name=name, description=description, latest_version=1)
    session.add(reward)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create took the name between the check and the insert
        session.rollback()
        raise _name_taken(name) from exc
    session.add(RewardVersion(reward_id=reward.id, version=1, spec=spec.model_dump(mode="json")))
    session.commit()
    return reward, validation


def _name_taken(name: str) -> ProblemError:
    return ProblemError(
        409,
        "name_taken",
        f"a reward named {name!r} exists; add a version to it instead",
        errors=[FieldError(field="name", message="already used in this tenant", type="unique")],
    )


def add_version(
    *,
    session: Session,
    reward: RewardDefinition,
    spec: RewardSpec,
    sample: RewardSample | None,
    runner: RewardRunner,
) -> tuple[RewardVersion, RewardValidation]:
    validation = check_reward(spec, sample, runner=runner)
    # One UPDATE takes the next number, so concurrent additions get distinct versions (the row lock on
    # PostgreSQL, the write lock on SQLite) instead of colliding on the primary key.
    number = session.execute(
        update(RewardDefinition)
        .where(RewardDefinition.id == reward.id)
        .values(latest_version=RewardDefinition.latest_version + 1)
        .returning(RewardDefinition.latest_version)
    ).scalar_one()
    version = RewardVersion(reward_id=reward.id, version=number, spec=spec.model_dump(mode="json"))
    session.add(version)
    session.commit()
    session.refresh(reward)
    return version, validation


def get_reward(*, session: Session, tenant_id: uuid.UUID, reward_id: uuid.UUID) -> RewardDefinition | None:
    return session.scalar(
        select(RewardDefinition).where(
            RewardDefinition.id == reward_id,
            RewardDefinition.tenant_id == tenant_id,
            RewardDefinition.deleted_at.is_(None),
        )
    )


def get_version(*, session: Session, reward: RewardDefinition, version: int | None) -> RewardVersion | None:
    return session.get(RewardVersion, (reward.id, version or reward.latest_version))


def versions_of(*, session: Session, reward_id: uuid.UUID) -> list[int]:
    query = select(RewardVersion.version).where(RewardVersion.reward_id == reward_id).order_by(RewardVersion.version)
    return list(session.scalars(query))


# Jobs that will still read their rewards (a paused one resumes).
IN_USE = (JobStatus.queued, JobStatus.running, JobStatus.pausing, JobStatus.paused)


def delete_reward(*, session: Session, reward: RewardDefinition) -> None:
    """Refused while a queued, running or paused job uses any version; finished jobs keep their pinned copy."""
    active = session.scalars(
        select(Job.id)
        .join(JobRewardUse, JobRewardUse.job_id == Job.id)
        .where(JobRewardUse.reward_id == reward.id, Job.status.in_(IN_USE))
    ).all()
    if active:
        raise ProblemError(
            409,
            "reward_in_use",
            f"{len(active)} queued, running or paused job(s) use this reward, "
            f"e.g. {active[0]}; cancel them or wait until they finish",
        )
    reward.deleted_at = utcnow()
    session.commit()


def resolve_references(
    *, session: Session, tenant_id: uuid.UUID, rewards: list[Any], param: str
) -> tuple[list[Any], list[tuple[uuid.UUID, int]]]:
    """Pin every reference to a version and copy that version's spec into it; returns the uses too."""
    resolved, uses = [], []
    for index, reward in enumerate(rewards):
        if not isinstance(reward, RewardRef):
            resolved.append(reward)
            continue
        definition = get_reward(session=session, tenant_id=tenant_id, reward_id=reward.reward_id)
        if definition is None:
            raise spec_error(f"{param}[{index}].reward_id", "no such reward")
        version = get_version(session=session, reward=definition, version=reward.version)
        if version is None:
            raise spec_error(f"{param}[{index}].version", f"no such version (latest is {definition.latest_version})")
        resolved.append(
            reward.model_copy(
                update={
                    "version": version.version,
                    "name": reward.name or definition.name,
                    "resolved": version.spec,
                }
            )
        )
        uses.append((definition.id, version.version))
    return resolved, uses


def score_reward_samples(spec: Any, samples: list[RewardSample], *, runner: RewardRunner) -> RewardTestResponse:
    """Score samples on a reward worker; per-sample failures are in the answer, not errors."""
    reply = runner.run(RewardCheckRequest(op="score", spec=spec.model_dump(mode="json"), samples=samples))
    if reply.error is not None:
        raise _problem(reply.error, "reward")
    scored = [r.total for r in reply.results if r.total is not None]
    return RewardTestResponse(
        results=reply.results,
        mean_total=sum(scored) / len(scored) if scored else None,
        error_count=sum(1 for r in reply.results if r.errors),
    )
