"""Reward definitions as API resources, references to them from jobs, and the reward test endpoints."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from app.schemas.judge import JudgeCallFields
from app.schemas.page import ListPublic
from app.schemas.reward import (
    NAME_PATTERN,
    MultiReward,
    RewardSample,
    RewardSampleScore,
    RewardSpec,
    StringCheckReward,
)
from app.schemas.reward_check import RewardValidation
from app.schemas.storable import MAX_INT32, StorableBody


class RewardRef(BaseModel):
    """A stored reward definition used by a job, pinned to one version when the job is created."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["ref"] = "ref"
    reward_id: uuid.UUID = Field(..., description="A reward definition of the caller's tenant.")
    version: int | None = Field(
        None, ge=1, le=MAX_INT32, description="Version to use; default the latest when the job is created."
    )
    name: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description="Component name in metrics; default the definition's name.",
    )
    weight: float | None = Field(None, ge=-100.0, le=100.0, description="Weight; default the definition's.")
    resolved: dict[str, JsonValue] | None = Field(
        None,
        description="Filled in by the server: the pinned version's spec. Ignored on input.",
    )


_INLINE = get_args(get_args(RewardSpec)[0])
# The members are read from RewardSpec at import time (new reward types join without an edit here), which a
# static checker cannot follow.
JobReward = Annotated[Union[*_INLINE, RewardRef], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007


_INLINE_ADAPTER: TypeAdapter[Any] = TypeAdapter(RewardSpec)


def concrete_rewards(rewards: list[Any]) -> list[Any]:
    """Inline reward specs for a job's rewards: references become their pinned version's spec, with the
    reference's name and weight. The server pins references when it accepts a job."""
    concrete = []
    for reward in rewards:
        if not isinstance(reward, RewardRef):
            concrete.append(reward)
            continue
        if reward.resolved is None:
            raise ValueError(f"reward reference {reward.reward_id} was never resolved by the server")
        overrides = {
            key: value for key, value in (("name", reward.name), ("weight", reward.weight)) if value is not None
        }
        concrete.append(_INLINE_ADAPTER.validate_python({**reward.resolved, **overrides}))
    return concrete


def reference_fields(spec: Any) -> set[str]:
    """Dataset fields a declarative reward reads (python and http rewards may read any: not listed)."""
    if isinstance(spec, MultiReward):
        return set().union(*(reference_fields(component) for component in spec.components))
    if isinstance(spec, StringCheckReward) and spec.value is not None:
        return set()
    if isinstance(spec, JudgeCallFields):  # judge rewards read the {{row.<field>}} of their templates
        return {name.removeprefix("row.") for name in spec.placeholders() if name.startswith("row.")}
    field = getattr(spec, "field", None)
    return {field} if isinstance(field, str) else set()


class RewardCreate(StorableBody):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        ...,
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description="Unique within the tenant; also the default component name in job metrics.",
    )
    description: str = Field("", max_length=4000)
    spec: RewardSpec = Field(..., description="The grader (any reward type; 'multi' combines several).")
    validation_sample: RewardSample | None = Field(
        None,
        description="A representative sample (a dataset row, a typical completion) for a dry run at creation. "
        "Without it, python code is compiled, its signature checked and the program loaded in the sandbox, "
        "but reward() is not called (a made-up empty row would fail most rewards).",
    )


class RewardVersionCreate(StorableBody):
    model_config = ConfigDict(extra="forbid")

    spec: RewardSpec
    validation_sample: RewardSample | None = None


VALIDATION_DESC = (
    "What creating it checked: 'dry_run' (built and scored on validation_sample) or 'checked' (built as a "
    "job would: python compiled, signature checked and loaded in the sandbox, reward() not called, because "
    "no validation_sample was given). Only in the answer to a create."
)


class RewardVersionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    reward_id: uuid.UUID
    version: int
    spec: dict[str, Any]
    created_at: datetime
    validation: RewardValidation | None = Field(None, description=VALIDATION_DESC)


class RewardPublic(BaseModel):
    object: Literal["reward"] = "reward"
    id: uuid.UUID
    name: str
    description: str
    latest_version: int
    created_at: datetime
    spec: dict[str, Any] = Field(..., description="The latest version's spec.")
    versions: list[int] = Field(..., description="All versions, oldest first.")
    validation: RewardValidation | None = Field(None, description=VALIDATION_DESC)


class RewardsPublic(ListPublic[RewardPublic]):
    pass


class RewardTestRequest(StorableBody):
    model_config = ConfigDict(extra="forbid")

    samples: list[RewardSample] = Field(..., min_length=1, max_length=256)
    version: int | None = Field(None, ge=1, le=MAX_INT32, description="Default: the latest version.")


class InlineRewardTestRequest(StorableBody):
    model_config = ConfigDict(extra="forbid")

    reward: RewardSpec
    samples: list[RewardSample] = Field(..., min_length=1, max_length=256)


class RewardTestResponse(BaseModel):
    results: list[RewardSampleScore]
    mean_total: float | None = Field(..., description="Mean total over the scorable samples; null if none was.")
    error_count: int = Field(..., description="Samples with at least one component error.")
