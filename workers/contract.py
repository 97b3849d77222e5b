"""The engine's contract with the outside world: what it is fed and what it reports.

The engine imports only torch, transformers and the standard library. Rewards come in as a plain
callable, progress goes out through a sink; the Celery task and the command line each provide
their own sink (database rows vs. JSON lines).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol


class JobFailure(Exception):
    """Base of every failure that ends a job with a known cause: `code` is one of the documented job
    error codes (app/schemas/errors.py::JobErrorCode, checked by a test), `param` the spec field at fault.

    Lives here, in the standard-library-only contract, because the engine and the rewards package raise
    these too and neither may import the service.
    """

    code: ClassVar[str] = "training_failed"
    param: str | None = None


@dataclass(frozen=True)
class RewardBatch:
    """Scores for N completions, in the order they were given."""

    total: list[float]  # weighted sum of the components, (N,); NaN: unscorable (no component had a value)
    components: dict[str, list[float]]  # component name -> raw (unweighted) score, each (N,)
    metrics: dict[str, float] = field(default_factory=dict)  # the scorer's own metrics (latency, errors)


class RewardFn(Protocol):
    def __call__(self, prompts: list[str], completions: list[str], rows: list[dict[str, Any]]) -> RewardBatch: ...


@dataclass(frozen=True)
class SampleRecord:
    """One logged completion, so users can read what the model actually writes."""

    prompt_index: int  # index of the prompt's row in the dataset
    group_index: int  # 0..group_size-1 within its group
    prompt: str
    completion: str
    reward: float
    components: dict[str, float]
    advantage: float
    num_tokens: int
    truncated: bool


@dataclass(frozen=True)
class StepReport:
    step: int  # steps completed so far, 1-based
    metrics: dict[str, float]
    samples: list[SampleRecord]


@dataclass(frozen=True)
class EvalReport:
    """Held-out evaluation of the policy at `step` (0 = before training)."""

    step: int
    metrics: dict[str, float]  # eval/reward_mean, eval/accuracy, eval/pass@k, eval/<component>/mean, ...
    num_prompts: int
    samples_per_prompt: int


class CheckpointThenStop(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by a sink's on_step or on_eval to stop after the step just finished (a pause): the engine
    checkpoints that step (if not done already), runs its scheduled evaluation, then re-raises, so
    resuming from that checkpoint continues exactly where the run stopped."""


class TrainingSink(Protocol):
    def on_step(self, report: StepReport) -> None:
        """Called after every step. May raise (e.g. JobCancelled) to stop training between steps, or
        CheckpointThenStop to stop after checkpointing this step."""

    def on_checkpoint(self, step: int, path: Path) -> None:
        """Called once a complete checkpoint directory exists at `path` (written atomically)."""

    def on_eval(self, report: EvalReport) -> None:
        """Called after each held-out evaluation."""

    # Optional, not part of the protocol: on_model_loaded(seconds), called once the model (and the
    # reference, the optimiser and any resumed state) is ready, before the first step.


@dataclass(frozen=True)
class TrainResult:
    steps_completed: int
    final_metrics: dict[str, float]
    final_checkpoint: Path | None
