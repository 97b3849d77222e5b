"""Reward graders, the user-code sandbox and reward-hacking safeguards.

Imports neither Celery, FastAPI nor the database; the engine gets a plain callable.
"""

from workers.rewards.errors import (
    ProgramError,
    RewardConfigError,
    RewardError,
    RewardValidationError,
    SandboxUnavailable,
)
from workers.rewards.monitor import Alert, RewardMonitor
from workers.rewards.sandbox import SandboxSettings
from workers.rewards.scorer import RewardFunction, build_reward_fn, component_names, score_samples
from workers.rewards.validation import validate_python_reward, validate_reward

__all__ = [
    "Alert",
    "ProgramError",
    "RewardConfigError",
    "RewardError",
    "RewardFunction",
    "RewardMonitor",
    "RewardValidationError",
    "SandboxSettings",
    "SandboxUnavailable",
    "build_reward_fn",
    "component_names",
    "score_samples",
    "validate_python_reward",
    "validate_reward",
]
