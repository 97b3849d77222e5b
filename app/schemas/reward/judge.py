"""Model judges as rewards: a model scores or labels the completion."""

from app.schemas.judge import JudgeLabelFields, JudgeScoreFields
from app.schemas.reward.base import RewardBase


class JudgeScoreReward(JudgeScoreFields, RewardBase):
    """LLM-as-judge: a model scores the completion (fields and parsing in app/schemas/judge.py)."""


class JudgeLabelReward(JudgeLabelFields, RewardBase):
    """LLM-as-judge: a model picks a label; passing labels score 1 (app/schemas/judge.py)."""
