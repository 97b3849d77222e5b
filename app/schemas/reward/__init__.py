"""Reward definitions: a discriminated union on `type`, plus the reward-test and safeguard schemas.

These are the declarative specs users send; workers/rewards turns them into scoring callables.
Graders that compare against a reference read the dataset row field named by `field`.
Every score is a float; `None` from a grader means "not applicable" (left out of the total)."""

from app.schemas.reward.base import FIELD_DESC, NAME_PATTERN, RewardBase
from app.schemas.reward.custom import HttpReward, PythonReward, check_reward_source
from app.schemas.reward.graders import (
    ExactMatchReward,
    FormatReward,
    JsonSchemaReward,
    LengthReward,
    MathEquivalenceReward,
    NumericMatchReward,
    RegexReward,
    StringCheckReward,
    TextSimilarityReward,
)
from app.schemas.reward.judge import JudgeLabelReward, JudgeScoreReward
from app.schemas.reward.safeguard import SafeguardSpec
from app.schemas.reward.sample import RewardSample, RewardSampleScore
from app.schemas.reward.spec import MultiReward, RewardSpec

__all__ = [
    "ExactMatchReward",
    "FIELD_DESC",
    "FormatReward",
    "HttpReward",
    "JsonSchemaReward",
    "JudgeLabelReward",
    "JudgeScoreReward",
    "LengthReward",
    "MathEquivalenceReward",
    "MultiReward",
    "NAME_PATTERN",
    "NumericMatchReward",
    "PythonReward",
    "RegexReward",
    "RewardBase",
    "RewardSample",
    "RewardSampleScore",
    "RewardSpec",
    "SafeguardSpec",
    "StringCheckReward",
    "TextSimilarityReward",
    "check_reward_source",
]
