"""Policy update: num_iterations optimiser steps over one generation batch, in micro-batches.

Micro-batches are length-bucketed (rows sorted by length, so a micro-batch pads to lengths close to
its own) and trimmed (prompt columns that are padding in every row and completion columns past the
longest row are dropped), so training runs on little more than the real tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from workers.engine.logprobs import CompletionScorer, completion_logprobs
from workers.engine.loss import LossSettings, StepTotals, aggregate, per_token_loss
from workers.engine.optim import clip_and_step


@dataclass
class PolicyBatch:
    """Everything the loss needs, for N completions (all tensors on the training device)."""

    prompt_ids: torch.Tensor  # (N, Lp) left-padded
    prompt_mask: torch.Tensor  # (N, Lp)
    completion_ids: torch.Tensor  # (N, C) right-padded
    completion_mask: torch.Tensor  # (N, C) real completion tokens (attention and log-probs)
    loss_mask: torch.Tensor  # (N, C) float: tokens that enter the loss (truncated rows masked if asked)
    advantages: torch.Tensor  # (N,)
    old_logps: torch.Tensor | None = None  # (N, C), only when num_iterations > 1
    ref_logps: torch.Tensor | None = None  # (N, C), only when beta > 0

    def micro_batches(self, size: int | None) -> list[torch.Tensor]:
        """Row indices of each micro-batch, longest rows first (stable, so the split is deterministic)."""
        total = self.prompt_mask.sum(1) + self.completion_mask.sum(1)  # (N,)
        order = torch.sort(total, descending=True, stable=True).indices
        return list(order.split(size or order.numel()))

    def rows(self, index: torch.Tensor) -> PolicyBatch:
        """The rows `index`, trimmed to their own longest prompt and completion."""
        prompt_mask = self.prompt_mask[index]
        first = int(prompt_mask.any(dim=0).int().argmax())  # first column with a real prompt token
        width = max(int(self.completion_mask[index].sum(1).max()), 1)

        def cut(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[index, :width]

        return PolicyBatch(
            prompt_ids=self.prompt_ids[index, first:],
            prompt_mask=prompt_mask[:, first:],
            completion_ids=cut(self.completion_ids),
            completion_mask=cut(self.completion_mask),
            loss_mask=cut(self.loss_mask),
            advantages=self.advantages[index],
            old_logps=cut(self.old_logps),
            ref_logps=cut(self.ref_logps),
        )


@torch.no_grad()
def score_batch(model: nn.Module, batch: PolicyBatch, micro_batch_size: int | None, temperature: float) -> torch.Tensor:
    """(N, C) log-probs of the batch's completions under `model`, without gradients (old / reference)."""
    logps = torch.zeros(batch.completion_ids.shape, dtype=torch.float32, device=batch.completion_ids.device)
    for index in batch.micro_batches(micro_batch_size):
        mb = batch.rows(index)
        mb_logps, _ = completion_logprobs(
            model,
            mb.prompt_ids,
            mb.prompt_mask,
            mb.completion_ids,
            mb.completion_mask,
            temperature=temperature,
        )
        logps[index, : mb_logps.size(1)] = mb_logps
    return logps


def loss_weights(mask: torch.Tensor, settings: LossSettings, totals: StepTotals) -> torch.Tensor:
    """(B, C) d(step loss) / d(per-token loss) of a micro-batch. loss.aggregate is linear in the per-token
    loss (a weighted sum for every loss_type), so this gradient is exact whatever the per-token losses
    are, and sum(per-token loss * weights) over any split of the rows adds up to the micro-batch's loss."""
    probe = torch.zeros_like(mask, requires_grad=True)
    with torch.enable_grad():
        (weights,) = torch.autograd.grad(aggregate(probe, mask, settings, totals), probe)
    return weights


def _cut(t: torch.Tensor | None, rows: torch.Tensor, width: int) -> torch.Tensor | None:
    return None if t is None else t[rows, :width]


def _backward(
    model: nn.Module,
    mb: PolicyBatch,
    settings: LossSettings,
    totals: StepTotals,
    temperature: float,
    *,
    with_entropy: bool,
    sums: dict[str, float],
) -> None:
    """Accumulate one micro-batch's gradients, one length bucket at a time (each bucket's graph is freed
    after its backward, see logprobs.CompletionScorer), and add its metrics to `sums`."""
    weights = loss_weights(mb.loss_mask, settings, totals)
    scorer = CompletionScorer(
        model, mb.prompt_ids, mb.prompt_mask, mb.completion_ids, mb.completion_mask,
        temperature=temperature, backward_per_bucket=True,
    )  # fmt: skip
    for rows in scorer.buckets():
        logps, entropy = scorer.logprobs(rows, with_entropy)  # (n, w), w: the bucket's longest completion
        width = logps.size(1)
        # mu = 1: the rollout policy is the current one, so ratio = 1 with the gradient of logp.
        old = _cut(mb.old_logps, rows, width) if mb.old_logps is not None else logps.detach()
        mask = mb.loss_mask[rows, :width]
        ref = _cut(mb.ref_logps, rows, width)
        token_loss, parts = per_token_loss(logps, old, mb.advantages[rows], mask, settings, ref)
        loss = (token_loss * weights[rows, :width]).sum()  # this bucket's share of the step loss
        loss.backward()
        with torch.no_grad():
            sums["loss"] += float(loss)
            if parts.kl is not None:
                sums["kl"] += float((parts.kl * mask).sum())
            if entropy is not None:
                sums["entropy"] += float((entropy * mask).sum())
            sums["low"] += float((parts.low_clipped * mask).sum())
            sums["high"] += float((parts.high_clipped * mask).sum())
            sums["region"] += float(((parts.low_clipped | parts.high_clipped) * mask).sum())
    scorer.backward_prompts()


def update_policy(
    model: nn.Module,
    parameters: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    batch: PolicyBatch,
    settings: LossSettings,
    *,
    num_iterations: int,
    micro_batch_size: int | None,
    temperature: float,
    max_grad_norm: float | None,
) -> dict[str, float]:
    """Run num_iterations optimiser updates on `batch`; returns the loss-side metrics (see metrics.py)."""
    chunks = batch.micro_batches(micro_batch_size)
    totals = StepTotals(
        num_tokens=int(batch.loss_mask.sum()),
        num_sequences=batch.advantages.numel(),
        num_micro_batches=len(chunks),
    )
    sums = dict.fromkeys(("loss", "kl", "entropy", "low", "high", "region", "grad_norm"), 0.0)
    learning_rate = optimizer.param_groups[0]["lr"]
    training_s = optimizer_s = 0.0
    model.train()
    for iteration in range(num_iterations):
        started = time.perf_counter()
        for index in chunks:
            mb = batch.rows(index)
            _backward(model, mb, settings, totals, temperature, with_entropy=iteration == 0, sums=sums)
        stepped = time.perf_counter()
        sums["grad_norm"] += clip_and_step(parameters, optimizer, scheduler, max_grad_norm)
        training_s += stepped - started
        optimizer_s += time.perf_counter() - stepped
    tokens = max(totals.num_tokens, 1)
    metrics = {
        "loss": sums["loss"] / num_iterations,
        "entropy": sums["entropy"] / tokens,
        "clip/low_frac": sums["low"] / (tokens * num_iterations),
        "clip/high_frac": sums["high"] / (tokens * num_iterations),
        "clip/region_frac": sums["region"] / (tokens * num_iterations),
        "grad_norm": sums["grad_norm"] / num_iterations,
        "learning_rate": learning_rate,
        "time/training_s": training_s,
        "time/optimizer_s": optimizer_s,
    }
    if settings.beta != 0.0:
        metrics["kl"] = sums["kl"] / (tokens * num_iterations)
    return metrics
