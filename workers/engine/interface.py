"""The engine's contract with the outside world; defined in workers/contract.py, which imports nothing
but the standard library, so the reward package and the API can use it without loading torch."""

from workers.contract import (
    CheckpointThenStop,
    EvalReport,
    RewardBatch,
    RewardFn,
    SampleRecord,
    StepReport,
    TrainingSink,
    TrainResult,
)

__all__ = [
    "CheckpointThenStop",
    "EvalReport",
    "RewardBatch",
    "RewardFn",
    "SampleRecord",
    "StepReport",
    "TrainResult",
    "TrainingSink",
]
