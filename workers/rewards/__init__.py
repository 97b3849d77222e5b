"""Reward graders. Imports neither Celery, FastAPI nor the database; the engine gets a plain callable."""

from workers.rewards.scorer import build_reward_fn

__all__ = ["build_reward_fn"]
