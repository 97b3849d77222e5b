"""Held-out evaluation: sample n completions per prompt, score them, report reward, accuracy, pass@k.

Definitions:
  eval/reward_mean     mean total reward over all samples
  eval/accuracy        fraction of samples whose total reward >= eval_success_threshold ("correct")
  eval/pass@k          unbiased estimator (Chen et al. 2021) of P(at least one of k samples is correct),
                       averaged over prompts: 1 - C(n - c, k) / C(n, k) with c correct out of n; for
                       k = 1, 2, 4, ... up to n (greedy decoding has n = 1, so only pass@1 = accuracy)
  eval/<component>/mean  mean raw score of each reward component
  eval/completion_length_mean, eval/truncated_frac   as in training
The sampling seed is the same at every evaluation (common random numbers), so differences between
evaluations of one run come from the model, not from the draw.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from workers.engine.backend import Backend
from workers.engine.collect import rollout_and_score, sampling_params
from workers.engine.config import GRPOConfig
from workers.engine.data import validate_rows
from workers.engine.interface import EvalReport, RewardFn
from workers.engine.sampling import SamplingParams
from workers.engine.state import load_checkpoint_model


def pass_at_k(n: int, correct: int, k: int) -> float:
    """Unbiased pass@k from n samples of which `correct` are correct."""
    if n - correct < k:
        return 1.0
    return 1.0 - math.comb(n - correct, k) / math.comb(n, k)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
    reward_fn: RewardFn,
    config: GRPOConfig,
    *,
    step: int,
    prompts_per_batch: int | None = None,
    backend: Backend | None = None,
) -> EvalReport:
    """Evaluate the model on `rows` (the first eval_max_prompts of them) as configured by the eval_* knobs."""
    validate_rows(rows, config.prompt_field, what="eval_rows")
    rows = rows[: config.eval_max_prompts] if config.eval_max_prompts else rows
    n = 1 if config.eval_greedy else config.eval_samples_per_prompt
    params = SamplingParams(greedy=True) if config.eval_greedy else sampling_params(config)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(config.seed + 1)  # not the training stream
    was_training = model.training
    model.eval()
    totals: list[float] = []
    components: dict[str, list[float]] = {}
    lengths, truncated = [], []
    batch = prompts_per_batch or config.prompts_per_step
    for start in range(0, len(rows), batch):
        indices = list(range(start, min(start + batch, len(rows))))
        rollout, scores, _, _ = rollout_and_score(
            model,
            tokenizer,
            rows,
            indices,
            reward_fn,
            config,
            generator,
            params=params,
            group_size=n,
            max_new_tokens=config.eval_max_new_tokens or config.max_new_tokens,
            backend=backend,
        )
        totals.extend(scores.total)
        for name, values in scores.components.items():
            components.setdefault(name, []).extend(values)
        lengths.append(rollout.lengths.cpu())
        truncated.append(rollout.truncated.cpu())
    model.train(was_training)
    return EvalReport(
        step=step,
        metrics=eval_metrics(
            totals, components, torch.cat(lengths), torch.cat(truncated), n, config.eval_success_threshold
        ),
        num_prompts=len(rows),
        samples_per_prompt=n,
    )


def eval_metrics(
    totals: list[float],
    components: dict[str, list[float]],
    lengths: torch.Tensor,
    truncated: torch.Tensor,
    n: int,
    threshold: float,
) -> dict[str, float]:
    correct = torch.tensor(totals, dtype=torch.float64).view(-1, n) >= threshold  # (prompts, n)
    metrics = {
        "eval/reward_mean": sum(totals) / len(totals),
        "eval/accuracy": float(correct.double().mean()),
        "eval/completion_length_mean": float(lengths.double().mean()),
        "eval/truncated_frac": float(truncated.double().mean()),
    }
    per_prompt = correct.sum(dim=1).tolist()
    k = 1
    while k <= n:
        metrics[f"eval/pass@{k}"] = sum(pass_at_k(n, c, k) for c in per_prompt) / len(per_prompt)
        k *= 2
    for name, values in components.items():
        metrics[f"eval/{name}/mean"] = sum(values) / len(values)
    return metrics


def evaluate_checkpoint(
    checkpoint: Path,
    rows: list[dict[str, Any]],
    reward_fn: RewardFn,
    *,
    overrides: dict[str, Any] | None = None,
    device: str | None = None,
) -> EvalReport:
    """Evaluate a saved checkpoint on demand (its own config, with eval_* knobs overridable)."""
    model, tokenizer, config, step = load_checkpoint_model(Path(checkpoint), overrides=overrides, device=device)
    return evaluate(model, tokenizer, rows, reward_fn, config, step=step)
