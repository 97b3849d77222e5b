import uuid
from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import TypeAdapter
from sqlalchemy import select

from app.api.deps import CurrentTenant, Idempotent, RewardRunnerDep, SessionDep
from app.api.params import CreatedAfter, CreatedBefore, Cursor, Limit, NameContains, VersionPath
from app.core.errors import not_found
from app.crud.pagination import filter_created_and_name, newest_first_page
from app.models import RewardDefinition
from app.schemas.reward import RewardSpec
from app.schemas.reward_check import RewardValidation
from app.schemas.reward_resource import (
    InlineRewardTestRequest,
    RewardCreate,
    RewardPublic,
    RewardsPublic,
    RewardTestRequest,
    RewardTestResponse,
    RewardVersionCreate,
    RewardVersionPublic,
)
from app.services import rewards as service

router = APIRouter(prefix="/rewards", tags=["rewards"])
_STORED_SPEC: TypeAdapter[Any] = TypeAdapter(RewardSpec)


def _public(session: SessionDep, reward: RewardDefinition, validation: RewardValidation | None = None) -> RewardPublic:
    latest = service.get_version(session=session, reward=reward, version=None)
    assert latest is not None
    return RewardPublic(
        id=reward.id,
        name=reward.name,
        description=reward.description,
        latest_version=reward.latest_version,
        created_at=reward.created_at,
        spec=latest.spec,
        versions=service.versions_of(session=session, reward_id=reward.id),
        validation=validation,
    )


def _reward(session: SessionDep, tenant: CurrentTenant, reward_id: uuid.UUID) -> RewardDefinition:
    reward = service.get_reward(session=session, tenant_id=tenant.id, reward_id=reward_id)
    if reward is None:
        raise not_found("reward")
    return reward


def _version_public(version: Any, validation: RewardValidation) -> RewardVersionPublic:
    public = RewardVersionPublic.model_validate(version)
    public.validation = validation
    return public


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RewardPublic)
def create_reward(
    reward_in: RewardCreate,
    session: SessionDep,
    tenant: CurrentTenant,
    runner: RewardRunnerDep,
    idempotent: Idempotent,
) -> RewardPublic:
    """Create a named reward definition (version 1). It is built first, on a reward worker, as a job would
    build it (python: syntax, a `reward(prompt, completion, row)` function, loaded in the sandbox); with a
    `validation_sample` it is also run on that sample. `validation` in the answer says which happened."""
    return idempotent.run(
        reward_in,
        lambda: _public(
            session,
            *service.create_reward(
                session=session,
                tenant=tenant,
                name=reward_in.name,
                description=reward_in.description,
                spec=reward_in.spec,
                sample=reward_in.validation_sample,
                runner=runner,
            ),
        ),
    )


@router.get("", response_model=RewardsPublic)
def list_rewards(
    session: SessionDep,
    tenant: CurrentTenant,
    limit: Limit = 20,
    cursor: Cursor = None,
    name: NameContains = None,
    created_after: CreatedAfter = None,
    created_before: CreatedBefore = None,
) -> RewardsPublic:
    """The tenant's reward definitions, newest first (cursor pages), each with its latest version's spec."""
    query = filter_created_and_name(
        select(RewardDefinition).where(RewardDefinition.tenant_id == tenant.id, RewardDefinition.deleted_at.is_(None)),
        RewardDefinition,
        name=name,
        created_after=created_after,
        created_before=created_before,
    )
    page, next_cursor = newest_first_page(session, query, RewardDefinition, limit=limit, cursor=cursor)
    return RewardsPublic(data=[_public(session, reward) for reward in page], next_cursor=next_cursor)


@router.post(":test", response_model=RewardTestResponse)
def test_inline_reward(
    request: InlineRewardTestRequest,
    tenant: CurrentTenant,  # noqa: ARG001 (authentication)
    runner: RewardRunnerDep,
) -> RewardTestResponse:
    """Score samples with an inline reward definition, without storing it or starting a job (on a reward
    worker; 503 worker_unavailable when none answers in time)."""
    return service.score_reward_samples(request.reward, request.samples, runner=runner)


@router.get("/{reward_id}", response_model=RewardPublic)
def read_reward(reward_id: uuid.UUID, session: SessionDep, tenant: CurrentTenant) -> RewardPublic:
    """A reward definition: its latest version's spec and the list of its versions."""
    return _public(session, _reward(session, tenant, reward_id))


@router.get("/{reward_id}/versions/{version}", response_model=RewardVersionPublic)
def read_reward_version(
    reward_id: uuid.UUID, version: VersionPath, session: SessionDep, tenant: CurrentTenant
) -> RewardVersionPublic:
    """One version of a reward definition, as jobs that pinned it run it (versions never change)."""
    row = service.get_version(session=session, reward=_reward(session, tenant, reward_id), version=version)
    if row is None:
        raise not_found("reward version")
    return RewardVersionPublic.model_validate(row)


@router.post("/{reward_id}/versions", status_code=status.HTTP_201_CREATED, response_model=RewardVersionPublic)
def create_reward_version(
    reward_id: uuid.UUID,
    version_in: RewardVersionCreate,
    session: SessionDep,
    tenant: CurrentTenant,
    runner: RewardRunnerDep,
    idempotent: Idempotent,
) -> RewardVersionPublic:
    """Change a reward by adding a version; jobs already submitted keep the version they pinned.

    With an `Idempotency-Key`, a retry returns the version the first request created instead of adding another."""
    reward = _reward(session, tenant, reward_id)
    return idempotent.run(
        version_in,
        lambda: _version_public(
            *service.add_version(
                session=session,
                reward=reward,
                spec=version_in.spec,
                sample=version_in.validation_sample,
                runner=runner,
            )
        ),
    )


@router.delete("/{reward_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_reward(reward_id: uuid.UUID, session: SessionDep, tenant: CurrentTenant) -> Response:
    """Delete a reward definition; refused (409) while a queued or running job uses it."""
    service.delete_reward(session=session, reward=_reward(session, tenant, reward_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{reward_id}/test", response_model=RewardTestResponse)
def test_reward(
    reward_id: uuid.UUID,
    request: RewardTestRequest,
    session: SessionDep,
    tenant: CurrentTenant,
    runner: RewardRunnerDep,
) -> RewardTestResponse:
    """Score caller-supplied samples with a stored reward: per-sample total, per-component scores, errors."""
    version = service.get_version(session=session, reward=_reward(session, tenant, reward_id), version=request.version)
    if version is None:
        raise not_found("reward version")
    return service.score_reward_samples(_STORED_SPEC.validate_python(version.spec), request.samples, runner=runner)
