"""Collect one step's batch: take prompts, roll out G completions each, score them, and (DAPO dynamic
sampling) drop groups whose rewards all tie, sampling more prompts until the batch is full again."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from workers.engine.backend import Backend, select_backend
from workers.engine.config import GRPOConfig
from workers.engine.data import PromptOrder, encode_prompts
from workers.engine.interface import RewardBatch, RewardFn
from workers.engine.loss import tied_groups
from workers.engine.rollout import Rollout, generate
from workers.engine.sampling import SamplingParams


@dataclass
class Collected:
    rollout: Rollout  # the completions to train on, (N,) rows grouped by prompt
    row_indices: list[int]  # (N,) dataset index of each completion's prompt
    rewards: torch.Tensor  # (N,) total reward, float32
    components: dict[str, list[float]]  # name -> (N,) raw component scores of the trained completions
    # Everything generated this step (dropped groups included), for the reward/completion metrics:
    all_rewards: torch.Tensor  # (M,)
    all_components: dict[str, list[float]]  # name -> (M,)
    all_lengths: torch.Tensor  # (M,)
    all_truncated: torch.Tensor  # (M,) bool
    scorer_metrics: dict[str, float] = field(default_factory=dict)
    dropped_groups: int = 0
    rounds: int = 1
    generation_s: float = 0.0
    scoring_s: float = 0.0


def sampling_params(config: GRPOConfig) -> SamplingParams:
    return SamplingParams(
        temperature=config.temperature,
        top_k=config.top_k,
        top_p=config.top_p,
        repetition_penalty=config.repetition_penalty,
        min_p=config.min_p,
    )


def rollout_and_score(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
    indices: list[int],
    reward_fn: RewardFn,
    config: GRPOConfig,
    generator: torch.Generator,
    *,
    params: SamplingParams,
    group_size: int,
    max_new_tokens: int,
    backend: Backend | None = None,
) -> tuple[Rollout, RewardBatch, float, float]:
    """G completions for each row in `indices`, scored: (rollout, scores, generation s, scoring s)."""
    started = time.perf_counter()
    prompts = [rows[i][config.prompt_field] for i in indices]
    encoded = encode_prompts(tokenizer, prompts, config.max_prompt_tokens)
    rollout = generate(
        model,
        tokenizer,
        encoded,
        group_size=group_size,
        max_new_tokens=max_new_tokens,
        params=params,
        generator=generator,
        stop=config.stop,
        backend=backend or select_backend(config.fast_paths),
    )
    generated = time.perf_counter()
    repeated = [i for i in indices for _ in range(group_size)]
    scores = reward_fn([rows[i][config.prompt_field] for i in repeated], rollout.texts, [rows[i] for i in repeated])
    if len(scores.total) != len(rollout.texts):
        raise ValueError(f"reward function returned {len(scores.total)} scores for {len(rollout.texts)} completions")
    return rollout, scores, generated - started, time.perf_counter() - generated


def collect_batch(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
    order: PromptOrder,
    reward_fn: RewardFn,
    config: GRPOConfig,
    generator: torch.Generator,
    backend: Backend | None = None,
) -> Collected:
    G = config.group_size
    params = sampling_params(config)
    kept: list[tuple[Rollout, list[int], torch.Tensor, dict[str, list[float]]]] = []  # per round
    seen_rewards, seen_lengths, seen_truncated = [], [], []
    components: dict[str, list[float]] = {}
    round_metrics: list[tuple[dict[str, float], int]] = []  # the scorer's metrics and batch size, per round
    generation_s = scoring_s = 0.0
    wanted, dropped, rounds, fallback = config.prompts_per_step, 0, 0, None
    while wanted > 0:
        rounds += 1
        indices = order.take(wanted)
        rollout, scores, gen_s, score_s = rollout_and_score(
            model,
            tokenizer,
            rows,
            indices,
            reward_fn,
            config,
            generator,
            params=params,
            group_size=G,
            max_new_tokens=config.max_new_tokens,
            backend=backend,
        )
        generation_s, scoring_s = generation_s + gen_s, scoring_s + score_s
        rewards = torch.tensor(scores.total, dtype=torch.float32)  # (n * G,)
        seen_rewards.append(rewards)
        seen_lengths.append(rollout.lengths)
        seen_truncated.append(rollout.truncated)
        for name, values in scores.components.items():
            components.setdefault(name, []).extend(values)
        round_metrics.append((scores.metrics, len(rollout.texts)))
        if not config.dynamic_sampling:
            kept.append((rollout, indices, rewards, scores.components))
            break
        informative = ~tied_groups(rewards, G)  # (n,) groups whose rewards do not all tie (exactly)
        dropped += int((~informative).sum())
        fallback = fallback or (rollout, indices, rewards, scores.components)
        if bool(informative.any()):
            rows_kept = informative.repeat_interleave(G).nonzero().squeeze(1)
            kept.append(
                (
                    select_rows(rollout, rows_kept),
                    [i for i, k in zip(indices, informative, strict=True) if k],
                    rewards[rows_kept],
                    {name: [values[r] for r in rows_kept.tolist()] for name, values in scores.components.items()},
                )
            )
            wanted -= int(informative.sum())
        if rounds > config.max_resample_rounds:
            break
    if not kept:  # every group tied in every round: train on the first round (zero advantages, KL only)
        kept.append(fallback)  # type: ignore[arg-type]
    return Collected(
        rollout=concat_rollouts([part[0] for part in kept], tokenizer.pad_token_id),
        row_indices=[i for part in kept for i in part[1] for _ in range(G)],
        rewards=torch.cat([part[2] for part in kept]),
        components={name: [v for part in kept for v in part[3][name]] for name in kept[0][3]},
        all_rewards=torch.cat(seen_rewards),
        all_components=components,
        all_lengths=torch.cat(seen_lengths).cpu(),
        all_truncated=torch.cat(seen_truncated).cpu(),
        scorer_metrics={f"scorer/{name}": value for name, value in combine_rounds(round_metrics).items()},
        dropped_groups=dropped,
        rounds=rounds,
        generation_s=generation_s,
        scoring_s=scoring_s,
    )


def combine_rounds(rounds: list[tuple[dict[str, float], int]]) -> dict[str, float]:
    """One step's scorer metrics from those of its sampling rounds, each (metrics, completions scored).

    Counts and times add up, maxima take the max, and everything else (means, rates, fractions) is the
    mean weighted by completions: exact for those, an approximation for the latency quantiles.
    """
    if len(rounds) == 1:
        return dict(rounds[0][0])
    combined: dict[str, float] = {}
    for name in dict.fromkeys(name for metrics, _ in rounds for name in metrics):
        present = [(metrics[name], n) for metrics, n in rounds if name in metrics]
        if name.startswith("time/") or name.endswith(("/errors", "/not_applicable")):
            combined[name] = sum(value for value, _ in present)
        elif name.endswith("_max"):
            combined[name] = max(value for value, _ in present)
        else:
            combined[name] = sum(value * n for value, n in present) / sum(n for _, n in present)
    return combined


def select_rows(rollout: Rollout, rows: torch.Tensor) -> Rollout:
    return Rollout(
        prompt_ids=rollout.prompt_ids[rows],
        prompt_mask=rollout.prompt_mask[rows],
        completion_ids=rollout.completion_ids[rows],
        completion_mask=rollout.completion_mask[rows],
        truncated=rollout.truncated[rows],
        texts=[rollout.texts[i] for i in rows.tolist()],
        sampler_logps=None if rollout.sampler_logps is None else rollout.sampler_logps[rows],
    )


def concat_rollouts(parts: list[Rollout], pad_id: int) -> Rollout:
    """Stack rollouts of different widths: prompts re-padded on the left, completions on the right."""
    if len(parts) == 1:
        return parts[0]
    prompt_width = max(p.prompt_ids.size(1) for p in parts)
    completion_width = max(p.completion_ids.size(1) for p in parts)

    def pad(t: torch.Tensor, width: int, value: int, left: bool) -> torch.Tensor:
        extra = width - t.size(1)
        return torch.nn.functional.pad(t, (extra, 0) if left else (0, extra), value=value)

    return Rollout(
        prompt_ids=torch.cat([pad(p.prompt_ids, prompt_width, pad_id, True) for p in parts]),
        prompt_mask=torch.cat([pad(p.prompt_mask, prompt_width, 0, True) for p in parts]),
        completion_ids=torch.cat([pad(p.completion_ids, completion_width, pad_id, False) for p in parts]),
        completion_mask=torch.cat([pad(p.completion_mask, completion_width, 0, False) for p in parts]),
        truncated=torch.cat([p.truncated for p in parts]),
        texts=[text for p in parts for text in p.texts],
        sampler_logps=None
        if any(p.sampler_logps is None for p in parts)
        else torch.cat([pad(p.sampler_logps, completion_width, 0, False) for p in parts]),  # type: ignore[arg-type]
    )
