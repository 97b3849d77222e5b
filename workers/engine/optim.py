"""AdamW with linear warm-up, then constant, linear or cosine decay (as transformers' schedulers)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from workers.engine.config import GRPOConfig


@dataclass(frozen=True)
class Schedule:
    """Learning-rate multiplier per optimiser update; a picklable callable so LambdaLR can save it."""

    kind: str  # 'constant' | 'linear' | 'cosine'
    warmup: int
    total: int  # optimiser updates in the run: max_steps * num_iterations * steps_per_generation

    def __call__(self, update: int) -> float:
        if update < self.warmup:
            return update / max(1, self.warmup)  # as transformers: the first update runs at lr 0
        if self.kind == "constant":
            return 1.0
        progress = (update - self.warmup) / max(1, self.total - self.warmup)
        if self.kind == "linear":
            return max(0.0, 1.0 - progress)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def build_optimizer(
    config: GRPOConfig, parameters: list[nn.Parameter]
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    # foreach=False: the per-parameter loop gives the same bits on every run and every resume; the
    # fused multi-tensor path is only a speed-up for many small tensors on GPU.
    optimizer = torch.optim.AdamW(
        parameters,
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
        weight_decay=config.weight_decay,
        foreach=None if parameters and parameters[0].is_cuda else False,
    )
    schedule = Schedule(config.lr_scheduler, config.warmup_steps, config.optimizer_updates)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return optimizer, scheduler


def clip_and_step(
    parameters: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    max_grad_norm: float | None,
) -> float:
    """Clip the global gradient norm, take one AdamW step, advance the schedule. Returns the norm
    before clipping (what was measured, not what was applied)."""
    if max_grad_norm is not None:
        norm = torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    else:
        grads = [p.grad.detach().norm() for p in parameters if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack(grads)) if grads else torch.zeros(())
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)
