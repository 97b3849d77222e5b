"""What both benchmark workers record, and the shared pieces of the workload they run.

A worker runs one trainer for `steps` steps in its own process and writes a WorkerResult as JSON:
per step the wall time between consecutive step ends, the time split, the prompt and completion
lengths, and the process's peak RSS so far; plus its RSS right after the model(s) were loaded.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.workload import make_prompts

PHASES = ("generation", "scoring", "reference", "training", "optimizer")
LEARNING_RATE = 1e-5
DATASET_PROMPTS = 64


@dataclass(frozen=True)
class StepShape:
    """The batch of one step: the issue's reference is 8 prompts x 8 completions, <= 64 new tokens."""

    prompts_per_step: int = 8
    group_size: int = 8
    max_new_tokens: int = 64

    def describe(self) -> str:
        return (
            f"{self.prompts_per_step} prompts x {self.group_size} completions, <= {self.max_new_tokens} new tokens, "
            f"temperature 1.0, DAPO loss, lr {LEARNING_RATE:g}, one optimiser step per generation batch"
        )


REFERENCE_SHAPE = StepShape()
QUICK_SHAPE = StepShape(prompts_per_step=2, group_size=4, max_new_tokens=16)  # the smoke run


def dataset_rows(seed: int = 0) -> list[dict[str, Any]]:
    return [{"prompt": prompt} for prompt in make_prompts(DATASET_PROMPTS, seed)]


def vowel_fraction(completion: str) -> float:
    """The reward: fraction of letters that are vowels. Cheap, deterministic, rarely tied in a group."""
    letters = [c for c in completion.lower() if c.isalpha()]
    return sum(c in "aeiou" for c in letters) / len(letters) if letters else 0.0


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_mb() -> float:
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def peak_gpu_mb() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@dataclass
class StepRecord:
    step_s: float  # wall time since the previous step ended (the first: since training started)
    phases: dict[str, float]  # seconds per phase (PHASES)
    prompt_lengths: list[int]  # (P,) real prompt tokens
    completion_lengths: list[int]  # (N,) completion tokens, EOS included
    truncated: int  # completions that hit the token cap
    peak_rss_mb: float  # process peak RSS so far
    peak_gpu_mb: float | None


@dataclass
class WorkerResult:
    trainer: str
    beta: float
    threads: int
    shape: StepShape
    rss_after_load_mb: float = 0.0
    steps: list[StepRecord] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> WorkerResult:
        data = json.loads(path.read_text())
        steps = [StepRecord(**step) for step in data.pop("steps")]
        return cls(**{**data, "shape": StepShape(**data["shape"])}, steps=steps)


class PhaseTimer:
    """Accumulates seconds per phase until `take()` hands them over (once per step)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, phase: str, fn: Callable[..., Any], when: Callable[[], bool] = lambda: True) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not when():
                return fn(*args, **kwargs)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                synchronize()
                self.seconds[phase] += time.perf_counter() - started

        return timed

    def take(self) -> dict[str, float]:
        taken = {phase: self.seconds.get(phase, 0.0) for phase in PHASES}
        self.seconds = defaultdict(float)
        return taken


class StepClock:
    """Wall time between consecutive step ends."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def lap(self) -> float:
        synchronize()
        now = time.perf_counter()
        elapsed, self.last = now - self.last, now
        return elapsed
