"""Policy update: num_iterations passes over one generation batch, each pass one optimiser step per
mini-batch (steps_per_generation), each mini-batch's gradient accumulated over micro-batches.

Micro-batches are length-bucketed (rows sorted by length, so a micro-batch pads to lengths close to
its own) and trimmed (prompt columns that are padding in every row and completion columns past the
longest row are dropped), so training runs on little more than the real tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from workers.engine.backend import Backend
from workers.engine.logprobs import CompletionScorer, completion_logprobs
from workers.engine.loss import LossSettings, StepTotals, aggregate, corrected, per_token_loss, sampling_weights
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
    old_logps: torch.Tensor | None = None  # (N, C), only when num_iterations > 1 or steps_per_generation > 1
    ref_logps: torch.Tensor | None = None  # (N, C), only when beta > 0
    sampler_logps: torch.Tensor | None = None  # (N, C) the sampler's own log-probs (rollout.sampler_logps)

    def micro_batches(self, size: int | None) -> list[torch.Tensor]:
        """Row indices of each micro-batch, longest rows first (stable, so the split is deterministic)."""
        total = self.prompt_mask.sum(1) + self.completion_mask.sum(1)  # (N,)
        order = torch.sort(total, descending=True, stable=True).indices
        return list(torch.split(order, size or order.numel()))

    def rows(self, index: torch.Tensor) -> PolicyBatch:
        """The rows `index`, trimmed to their own longest prompt and completion."""
        prompt_mask = self.prompt_mask[index]
        first = int(prompt_mask.any(dim=0).int().argmax())  # first column with a real prompt token
        width = max(int(self.completion_mask[index].sum(1).max()), 1)

        def cut(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[index, :width]

        def cut_required(t: torch.Tensor) -> torch.Tensor:
            return t[index, :width]

        return PolicyBatch(
            prompt_ids=self.prompt_ids[index, first:],
            prompt_mask=prompt_mask[:, first:],
            completion_ids=cut_required(self.completion_ids),
            completion_mask=cut_required(self.completion_mask),
            loss_mask=cut_required(self.loss_mask),
            advantages=self.advantages[index],
            old_logps=cut(self.old_logps),
            ref_logps=cut(self.ref_logps),
            sampler_logps=cut(self.sampler_logps),
        )


@torch.no_grad()
def score_batch(
    model: nn.Module,
    batch: PolicyBatch,
    micro_batch_size: int | None,
    temperature: float,
    backend: Backend | None = None,
) -> torch.Tensor:
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
            backend=backend,
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
    backend: Backend | None = None,
) -> None:
    """Accumulate one micro-batch's gradients, one length bucket at a time (each bucket's graph is freed
    after its backward, see logprobs.CompletionScorer), and add its metrics to `sums`."""
    weights = loss_weights(mb.loss_mask, settings, totals)
    correct = settings.sampling_correction != "off"
    if correct and mb.sampler_logps is None:
        raise ValueError("sampling_correction needs the sampler's log-probs, which greedy rollouts do not record")
    scorer = CompletionScorer(
        model, mb.prompt_ids, mb.prompt_mask, mb.completion_ids, mb.completion_mask,
        temperature=temperature, backward_per_bucket=True, backend=backend,
    )  # fmt: skip
    for rows in scorer.buckets():
        logps, entropy = scorer.logprobs(rows, with_entropy)  # (n, w), w: the bucket's longest completion
        width = logps.size(1)
        # mu = 1: the rollout policy is the current one, so ratio = 1 with the gradient of logp.
        old = mb.old_logps[rows, :width] if mb.old_logps is not None else logps.detach()
        mask = mb.loss_mask[rows, :width]
        ref = _cut(mb.ref_logps, rows, width)
        token_loss, parts = per_token_loss(logps, old, mb.advantages[rows], mask, settings, ref)
        sampler = _cut(mb.sampler_logps, rows, width)
        if correct:  # weight by p_trainer / p_sampler of the policy that sampled (old, no gradient)
            assert sampler is not None  # checked above
            mode, cap = settings.sampling_correction, settings.sampling_correction_cap
            is_weights = sampling_weights(old, sampler, mask, mode, cap)
            token_loss = token_loss * is_weights
        loss = (token_loss * weights[rows, :width]).sum()  # this bucket's share of the step loss
        torch.autograd.backward(loss)  # loss.backward(), which mypy sees untyped
        with torch.no_grad():
            sums["loss"] += float(loss)
            if parts.kl is not None:
                sums["kl"] += float((parts.kl * mask).sum())
            if entropy is not None:
                sums["entropy"] += float((entropy * mask).sum())
            sums["low"] += float((parts.low_clipped * mask).sum())
            sums["high"] += float((parts.high_clipped * mask).sum())
            sums["region"] += float(((parts.low_clipped | parts.high_clipped) * mask).sum())
            if with_entropy and sampler is not None:  # iteration 0: the mismatch of the sampling policy
                _mismatch(old, sampler, mask, sums)
            if correct:
                sums["is_weight"] += float((is_weights * mask).sum())
                changed = corrected(is_weights, settings.sampling_correction, settings.sampling_correction_cap)
                sums["is_corrected"] += float((changed * mask).sum())
    scorer.backward_prompts()


def _mismatch(trainer: torch.Tensor, sampler: torch.Tensor, mask: torch.Tensor, sums: dict[str, float]) -> None:
    """Add the sampler/trainer mismatch of a bucket's loss tokens to `sums`: |dlogp| and the k3 estimate of
    KL(sampler || trainer) (tokens are drawn from the sampler, so r = p_trainer / p_sampler, k3 = r - 1 - log r)."""
    diff = (trainer - sampler) * mask  # (n, w) log r, 0 off the mask
    size = diff.abs()
    total, largest, kl = torch.stack([size.sum(), size.max(), (torch.exp(diff) - 1.0 - diff).sum()]).tolist()
    sums["dlogp"] += total
    sums["dlogp_max"] = max(sums["dlogp_max"], largest)
    sums["sampler_kl"] += kl  # exp(0) - 1 - 0 = 0 off the mask


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
    steps_per_generation: int = 1,
    backend: Backend | None = None,
) -> dict[str, float]:
    """Run num_iterations passes over `batch`, one optimiser update per mini-batch (steps_per_generation
    contiguous, nearly equal row ranges); returns the loss-side metrics (see metrics.py)."""
    rows = torch.arange(batch.advantages.numel(), device=batch.advantages.device)
    mini_batches = [part for part in rows.tensor_split(steps_per_generation) if part.numel()]
    # Each mini-batch is its own loss (its own normalisers), as a step is when steps_per_generation = 1.
    plans = []
    for part in mini_batches:
        mini = batch if len(mini_batches) == 1 else batch.rows(part)
        chunks = mini.micro_batches(micro_batch_size)
        totals = StepTotals(
            num_tokens=int(mini.loss_mask.sum()), num_sequences=mini.advantages.numel(), num_micro_batches=len(chunks)
        )
        plans.append((mini, chunks, totals))
    sums = dict.fromkeys(
        ("loss", "kl", "entropy", "low", "high", "region", "grad_norm", "dlogp", "dlogp_max", "sampler_kl",
         "is_weight", "is_corrected"),
        0.0,
    )  # fmt: skip
    learning_rate = optimizer.param_groups[0]["lr"]
    training_s = optimizer_s = 0.0
    model.train()
    for iteration in range(num_iterations):
        for mini, chunks, totals in plans:
            started = time.perf_counter()
            for index in chunks:
                mb = mini.rows(index)
                _backward(
                    model, mb, settings, totals, temperature, with_entropy=iteration == 0, sums=sums, backend=backend
                )
            stepped = time.perf_counter()
            sums["grad_norm"] += clip_and_step(parameters, optimizer, scheduler, max_grad_norm)
            training_s += stepped - started
            optimizer_s += time.perf_counter() - stepped
    updates = num_iterations * len(plans)
    tokens = max(int(batch.loss_mask.sum()), 1)
    metrics = {
        "loss": sums["loss"] / updates,
        "entropy": sums["entropy"] / tokens,
        "clip/low_frac": sums["low"] / (tokens * num_iterations),
        "clip/high_frac": sums["high"] / (tokens * num_iterations),
        "clip/region_frac": sums["region"] / (tokens * num_iterations),
        "grad_norm": sums["grad_norm"] / updates,
        "learning_rate": learning_rate,
        "time/training_s": training_s,
        "time/optimizer_s": optimizer_s,
    }
    if settings.beta != 0.0:
        metrics["kl"] = sums["kl"] / (tokens * num_iterations)
    if batch.sampler_logps is not None:
        metrics["sampling/logp_diff_mean"] = sums["dlogp"] / tokens
        metrics["sampling/logp_diff_max"] = sums["dlogp_max"]
        metrics["sampling/kl"] = sums["sampler_kl"] / tokens
    if settings.sampling_correction != "off":
        metrics["sampling/is_weight_mean"] = sums["is_weight"] / (tokens * num_iterations)
        metrics["sampling/is_corrected_frac"] = sums["is_corrected"] / (tokens * num_iterations)
    return metrics
