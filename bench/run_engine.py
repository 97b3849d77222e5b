"""Benchmark worker: this repository's engine (workers/engine) on the reference workload.

The engine reports its own time split per step (time/* metrics); the bench only adds hooks around
two module-level functions of the training loop, to read the RSS once the models are loaded and the
lengths of every completion, and a device sync after the reference forward (no-op on CPU).
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import Any

import torch

from bench.measure import (
    LEARNING_RATE,
    StepClock,
    StepRecord,
    StepShape,
    WorkerResult,
    current_rss_mb,
    dataset_rows,
    peak_gpu_mb,
    peak_rss_mb,
    synchronize,
    vowel_fraction,
)
from workers.engine import GRPOConfig, RewardBatch, StepReport

# The module, not the function `workers.engine.train` that the package exports under the same name.
loop = importlib.import_module("workers.engine.train")


class _Done(Exception):
    """Raised from the sink after the last measured step: skips the final checkpoint save."""


def reward(_prompts: list[str], completions: list[str], _rows: list[dict[str, Any]]) -> RewardBatch:
    return RewardBatch(total=[vowel_fraction(c) for c in completions], components={})


class _Sink:
    def __init__(self, result: WorkerResult, steps: int, lengths: list[tuple[list[int], list[int], int]]):
        self.result, self.steps, self.lengths = result, steps, lengths
        self.clock = StepClock()

    def on_step(self, report: StepReport) -> None:
        elapsed = self.clock.lap()
        m = report.metrics
        prompts, completions, truncated = self.lengths.pop(0)
        self.result.steps.append(
            StepRecord(
                step_s=elapsed,
                phases={
                    "generation": m["time/generation_s"],
                    "scoring": m["time/scoring_s"],
                    "reference": m["time/reference_s"],
                    "training": m["time/training_s"],
                    "optimizer": m["time/optimizer_s"],
                },
                prompt_lengths=prompts,
                completion_lengths=completions,
                truncated=truncated,
                peak_rss_mb=peak_rss_mb(),
                peak_gpu_mb=peak_gpu_mb(),
            )
        )
        if report.step == self.steps:
            raise _Done

    def on_checkpoint(self, step: int, path: Path) -> None:
        pass

    def on_eval(self, report: Any) -> None:
        pass


def run(model_dir: Path, beta: float, steps: int, dtype: str, shape: StepShape) -> WorkerResult:
    result = WorkerResult(trainer="engine", beta=beta, threads=torch.get_num_threads(), shape=shape)
    lengths: list[tuple[list[int], list[int], int]] = []
    sink = _Sink(result, steps, lengths)
    setup_run, collect_batch, score_batch = loop.setup_run, loop.collect_batch, loop.score_batch

    def setup_and_measure(*args: Any, **kwargs: Any) -> Any:
        run_state = setup_run(*args, **kwargs)
        result.rss_after_load_mb = current_rss_mb()
        sink.clock = StepClock()  # steps are timed from here: loading is not part of a step
        return run_state

    def collect_and_record(*args: Any, **kwargs: Any) -> Any:
        batch = collect_batch(*args, **kwargs)
        rollout = batch.rollout
        prompts = rollout.prompt_mask.sum(dim=1)[:: shape.group_size].tolist()
        lengths.append((prompts, rollout.lengths.tolist(), int(rollout.truncated.sum())))
        return batch

    def score_and_sync(*args: Any, **kwargs: Any) -> Any:
        out = score_batch(*args, **kwargs)
        synchronize()
        return out

    loop.setup_run, loop.collect_batch, loop.score_batch = setup_and_measure, collect_and_record, score_and_sync
    config = GRPOConfig(
        model_source=str(model_dir),
        group_size=shape.group_size,
        prompts_per_step=shape.prompts_per_step,
        max_steps=steps,
        max_new_tokens=shape.max_new_tokens,
        max_prompt_tokens=None,
        temperature=1.0,
        loss_type="dapo",
        learning_rate=LEARNING_RATE,
        beta=beta,
        precision=dtype,
        checkpoint_every=steps,
        log_samples_per_step=0,
        seed=0,
    )
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as work_dir:
        try:
            loop.train(config, dataset_rows(), reward, sink, work_dir=Path(work_dir))
        except _Done:
            pass
    return result
