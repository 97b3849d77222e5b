"""Benchmark worker: TRL's GRPOTrainer (the pinned trl of the test extra) on the reference workload.

The time split comes from timers wrapped around the trainer's own methods (instance attributes, so
TRL's code is unchanged): `_generate` (tokenise, generate, decode), `_calculate_rewards`, the no-grad
calls of `_get_per_token_logps_and_entropies` (reference forward), `compute_loss` plus
`accelerator.backward` (training forward + backward), and `_clip_grad_norm` plus the optimiser step
(between the trainer's pre/post optimiser-step callbacks).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from bench.measure import (
    LEARNING_RATE,
    PhaseTimer,
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

Lengths = list[tuple[list[int], list[int], int]]  # per step: prompt lengths, completion lengths, truncated


def reward(completions: list[str], **_: Any) -> list[float]:  # TRL passes everything by keyword
    return [vowel_fraction(c) for c in completions]


class _Recorder(TrainerCallback):
    def __init__(self, result: WorkerResult, timer: PhaseTimer, lengths: Lengths):
        self.result, self.timer, self.lengths = result, timer, lengths
        self.shape = result.shape
        self.clock = StepClock()
        self.optimizer_started = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.clock = StepClock()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        synchronize()
        self.optimizer_started = time.perf_counter()

    def on_optimizer_step(self, args, state, control, **kwargs):
        synchronize()
        self.timer.seconds["optimizer"] += time.perf_counter() - self.optimizer_started

    def on_step_end(self, args, state, control, **kwargs):
        elapsed = self.clock.lap()
        prompts, completions, truncated = self.lengths.pop(0)
        self.result.steps.append(
            StepRecord(
                step_s=elapsed,
                phases=self.timer.take(),
                prompt_lengths=prompts[:: self.shape.group_size],
                completion_lengths=completions,
                truncated=truncated,
                peak_rss_mb=peak_rss_mb(),
                peak_gpu_mb=peak_gpu_mb(),
            )
        )


def _instrument(trainer: GRPOTrainer, timer: PhaseTimer, lengths: Lengths) -> None:
    generate = timer.wrap("generation", trainer._generate)
    ends = {*trainer.eos_token_ids, trainer._tokenizer.pad_token_id}

    def generate_and_record(prompts: list) -> Any:
        out = generate(prompts)
        prompt_ids, completion_ids = out[0], out[1]
        truncated = sum(ids[-1] not in ends for ids in completion_ids)  # as TRL's own clipped_ratio
        lengths.append(([len(ids) for ids in prompt_ids], [len(ids) for ids in completion_ids], truncated))
        return out

    trainer._generate = generate_and_record
    trainer._calculate_rewards = timer.wrap("scoring", trainer._calculate_rewards)
    trainer._get_per_token_logps_and_entropies = timer.wrap(
        "reference", trainer._get_per_token_logps_and_entropies, when=lambda: not torch.is_grad_enabled()
    )
    trainer.compute_loss = timer.wrap("training", trainer.compute_loss)
    trainer.accelerator.backward = timer.wrap("training", trainer.accelerator.backward)
    trainer._clip_grad_norm = timer.wrap("optimizer", trainer._clip_grad_norm)


def run(model_dir: Path, beta: float, steps: int, dtype: str, shape: StepShape) -> WorkerResult:
    result = WorkerResult(trainer="trl", beta=beta, threads=torch.get_num_threads(), shape=shape)
    timer, lengths = PhaseTimer(), []
    with tempfile.TemporaryDirectory(prefix="bench-trl-") as output_dir:
        args = GRPOConfig(
            output_dir=output_dir,
            # the whole generation batch in one micro-batch: one optimiser step per generation batch
            per_device_train_batch_size=shape.group_size * shape.prompts_per_step,
            num_generations=shape.group_size,
            max_completion_length=shape.max_new_tokens,
            temperature=1.0,
            loss_type="dapo",
            learning_rate=LEARNING_RATE,
            beta=beta,
            max_steps=steps,
            bf16=dtype == "bf16",
            gradient_checkpointing=False,  # as the engine's default (TRL defaults to True)
            logging_steps=steps,  # log once, after the last measured step
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=0,
        )
        trainer = GRPOTrainer(
            model=str(model_dir), reward_funcs=[reward], args=args, train_dataset=Dataset.from_list(dataset_rows())
        )
        result.rss_after_load_mb = current_rss_mb()
        _instrument(trainer, timer, lengths)
        trainer.add_callback(_Recorder(result, timer, lengths))
        trainer.train()
    return result
