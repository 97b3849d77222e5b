"""The GRPO engine: a library with one entry point, `train`.

Imports only torch, transformers, peft and the standard library; rewards come in as a plain callable
and progress goes out through a TrainingSink (see interface.py).
"""

from workers.engine.checkpoint import is_complete, latest_checkpoint, list_checkpoints
from workers.engine.config import GRPOConfig, LoraSettings
from workers.engine.evaluation import evaluate, evaluate_checkpoint
from workers.engine.interface import (
    EvalReport,
    RewardBatch,
    RewardFn,
    SampleRecord,
    StepReport,
    TrainingSink,
    TrainResult,
)
from workers.engine.metrics import METRICS
from workers.engine.tiny import TINY_DEMO, build_tiny_model
from workers.engine.train import train

__all__ = [
    "METRICS",
    "TINY_DEMO",
    "EvalReport",
    "GRPOConfig",
    "LoraSettings",
    "RewardBatch",
    "RewardFn",
    "SampleRecord",
    "StepReport",
    "TrainResult",
    "TrainingSink",
    "build_tiny_model",
    "evaluate",
    "evaluate_checkpoint",
    "is_complete",
    "latest_checkpoint",
    "list_checkpoints",
    "train",
]
