"""Engine test helpers: the 'repeat the digit' task and its reward, a small config, a recording sink, a
gradient comparison, and a stand-in model for the checkpoint storage tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from workers.engine import EvalReport, GRPOConfig, RewardBatch, StepReport
from workers.engine.checkpoint import save_checkpoint
from workers.engine.metrics import is_wall_clock


def digit_rows() -> list[dict[str, Any]]:
    """The 'repeat the digit' task: prompt 'd>' wants completion 'd'."""
    return [{"prompt": f"{d}>", "answer": str(d)} for d in range(10)]


def repeat_reward(_prompts: list[str], completions: list[str], rows: list[dict[str, Any]]) -> RewardBatch:
    """1 when the completion starts with the answer digit, + 0.1 for being short (two components)."""
    hit = [float(c[:1] == r["answer"]) for c, r in zip(completions, rows, strict=True)]
    short = [float(len(c) <= 1) for c in completions]
    return RewardBatch(
        total=[h + 0.1 * s for h, s in zip(hit, short, strict=True)], components={"hit": hit, "short": short}
    )


def make_config(cache: Path, **overrides: Any) -> GRPOConfig:
    settings: dict[str, Any] = {
        "model_cache_dir": cache,
        "group_size": 4,
        "prompts_per_step": 3,
        "max_steps": 4,
        "max_new_tokens": 4,
        "learning_rate": 1e-3,
        "checkpoint_every": 1000,
        "keep_last": 2,
        "seed": 0,
    }
    settings.update(overrides)
    return GRPOConfig(**settings)


class RecordingSink:
    """Keeps every report; optionally raises from on_step at a given step (cancel)."""

    def __init__(self, raise_at: int | None = None) -> None:
        self.steps: list[StepReport] = []
        self.checkpoints: list[tuple[int, Path]] = []
        self.evals: list[EvalReport] = []
        self.raise_at = raise_at

    def on_step(self, report: StepReport) -> None:
        self.steps.append(report)
        if self.raise_at is not None and report.step == self.raise_at:
            raise Cancelled(report.step)

    def on_checkpoint(self, step: int, path: Path) -> None:
        self.checkpoints.append((step, path))

    def on_eval(self, report: EvalReport) -> None:
        self.evals.append(report)

    def run_metrics(self) -> list[dict[str, float]]:
        """Per-step metrics without the timing ones."""
        return [{k: v for k, v in r.metrics.items() if not is_wall_clock(k)} for r in self.steps]


class Cancelled(Exception):
    pass


def gradient_errors(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(relative error of the whole gradient, worst per-tensor max error relative to that tensor's max).

    Per tensor the scale is floored at 1e-3 of the largest gradient element: some gradients are zero in
    exact arithmetic and only rounding noise in both (the k_proj bias: a shift shared by all keys leaves
    the softmax unchanged), and relative error of noise means nothing."""
    assert ours.keys() == theirs.keys()
    flat_ours = torch.cat([ours[name].flatten() for name in theirs])
    flat_theirs = torch.cat([theirs[name].flatten() for name in theirs])
    floor = 1e-3 * float(flat_theirs.abs().max())
    per_tensor = max(
        float((ours[name] - theirs[name]).abs().max() / (theirs[name].abs().max() + floor)) for name in theirs
    )
    return float((flat_ours - flat_theirs).norm() / flat_theirs.norm()), per_tensor


class FakeModel:
    """Anything with save_pretrained will do for the storage layer."""

    def __init__(self, payload: str, name: str = "model.bin") -> None:
        self.payload, self.name = payload, name

    def save_pretrained(self, path):
        (path / self.name).write_text(self.payload)


def save_fake_checkpoint(work_dir, step):
    return save_checkpoint(
        work_dir,
        step,
        model=FakeModel(f"w{step}"),
        tokenizer=FakeModel("tok", "tokenizer.txt"),
        trainer_state={"x": torch.tensor([step])},
        info={"data_cursor": step * 3},
    )
