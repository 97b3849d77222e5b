"""Reward definitions: create, version, delete, resolve references from jobs, test on samples.

Scoring and validation run the graders of workers/rewards; user code runs only in its sandbox
(separate, unprivileged, network-less processes), never in the API process itself.
"""

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import FieldError, ProblemError, spec_error
from app.models import Job, JobRewardUse, RewardDefinition, RewardVersion, Tenant
from app.models.base import utcnow
from app.schemas.job import JobStatus
from app.schemas.reward import RewardSample, RewardSpec
from app.schemas.reward_resource import RewardRef, RewardTestResponse
from workers.rewards import RewardConfigError, RewardValidationError, SandboxUnavailable, score_samples, validate_reward

NEUTRAL_SAMPLE = RewardSample(prompt="", completion="", row={})


def check_reward(spec: Any, sample: RewardSample | None, *, field: str = "spec") -> None:
    """Build the reward as a job would and dry-run it; raise a 422 naming the field on any failure."""
    try:
        validate_reward(spec, sample or (NEUTRAL_SAMPLE if _runs_code(spec) else None))
    except SandboxUnavailable as exc:
        raise ProblemError(503, "sandbox_unavailable", f"user code cannot be isolated on this server: {exc}") from exc
    except (RewardValidationError, RewardConfigError) as exc:
        param = getattr(exc, "param", None)
        hint = "" if sample else "; pass validation_sample with a representative row"
        raise spec_error(f"{field}.{param}" if param else field, f"{exc}{hint}") from exc


def _runs_code(spec: Any) -> bool:
    return spec.type == "python" or any(_runs_code(c) for c in getattr(spec, "components", []))


def create_reward(
    *, session: Session, tenant: Tenant, name: str, description: str, spec: RewardSpec, sample: RewardSample | None
) -> RewardDefinition:
    if session.scalar(
        select(RewardDefinition.id).where(RewardDefinition.tenant_id == tenant.id, RewardDefinition.name == name)
    ):
        raise _name_taken(name)
    check_reward(spec, sample)
    reward = RewardDefinition(tenant_id=tenant.id, name=name, description=description, latest_version=1)
    session.add(reward)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create took the name between the check and the insert
        session.rollback()
        raise _name_taken(name) from exc
    session.add(RewardVersion(reward_id=reward.id, version=1, spec=spec.model_dump(mode="json")))
    session.commit()
    return reward


def _name_taken(name: str) -> ProblemError:
    return ProblemError(
        409,
        "name_taken",
        f"a reward named {name!r} exists; add a version to it instead",
        errors=[FieldError(field="name", message="already used in this tenant", type="unique")],
    )


def add_version(
    *, session: Session, reward: RewardDefinition, spec: RewardSpec, sample: RewardSample | None
) -> RewardVersion:
    check_reward(spec, sample)
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
    return version


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


def score_reward_samples(spec: Any, samples: list[RewardSample]) -> RewardTestResponse:
    try:
        results = score_samples([spec], samples)
    except SandboxUnavailable as exc:
        raise ProblemError(503, "sandbox_unavailable", f"user code cannot be isolated on this server: {exc}") from exc
    except (RewardValidationError, RewardConfigError) as exc:
        param = getattr(exc, "param", None)
        raise spec_error(f"reward.{param}" if param else "reward", str(exc)) from exc
    return RewardTestResponse(
        results=results,
        mean_total=sum(r.total for r in results) / len(results),
        error_count=sum(1 for r in results if r.errors),
    )
