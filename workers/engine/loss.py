"""GRPO advantages and the clipped surrogate loss: pure tensor functions.

Definitions follow TRL's GRPOTrainer (documented there, verified by tests/engine/test_parity_trl.py):

  ratio_t   = exp(logp_t - old_logp_t)                    token level (GRPO)
            = exp(mean_t(logp_t - old_logp_t))            sequence level (GSPO), shared by the row's tokens
  surrogate = min(ratio * A, clip(ratio, 1 - eps, 1 + eps_high) * A), with ratio capped at delta if set
  kl_t      = exp(ref_t - logp_t) - (ref_t - logp_t) - 1  (k3 estimator, >= 0),
              times ratio_t (before the delta cap) with kl_bias_correction (TRL's default)
  loss_t    = -surrogate_t + beta * kl_t

and the per-token losses are aggregated over the step's tokens (loss_type):
  grpo     sum over sequences of (mean over the sequence's tokens) / number of sequences
  bnpo     mean over the tokens of each micro-batch, averaged over micro-batches
  dr_grpo  sum over all tokens / (number of sequences * max_new_tokens)
  dapo     sum over all tokens / number of tokens in the whole step
Each micro-batch's loss is its share of the step loss, so summing the micro-batches' gradients gives
the step's gradient (gradient accumulation changes memory, not the result, except for bnpo, whose
definition depends on the micro-batches).

Where TRL 1.16.0 differs (tests/engine/test_parity_trl.py runs TRL with the engine's definition where
TRL has an option for it):
- KL: TRL's default `use_bias_correction_kl=True` multiplies kl_t by the importance ratio (before the
  delta cap). The loss value is the same on-policy, but the gradient gains beta * kl_t * grad logp_t.
  Here kl_t enters as is by default (the GRPO paper's form, TRL with use_bias_correction_kl=False);
  kl_bias_correction=True is TRL's default form.
- Advantages: TRL's std epsilon is fixed at 1e-4; here it is reward_std_epsilon (default 1e-4). TRL
  takes the group mean in float32, so some tied groups (e.g. 8 x 0.7 at its default G = 8) get a
  small same-sign advantage there and exactly 0 here (see group_advantages).
- grpo and dr_grpo: TRL normalises each micro-batch by its own number of sequences and divides by
  the accumulation steps; here the step's number of sequences is used. Equal whenever micro-batches
  are equally sized (always so in TRL); a smaller last micro-batch here still gives the exact mean.
- bnpo: the same definition, but TRL's micro-batches are a random shuffle of the batch and here they
  are length-sorted, so with several micro-batches the two give different (equally valid) values.
- mask_truncated_completions: TRL calls a completion truncated when its last token is not EOS (or
  pad); here, when it produced neither EOS nor a stop string. They differ only with stop strings,
  which TRL has no option for (a `stop_strings` generation kwarg would count as truncated there).
- Sequence-level clip metrics: TRL counts clipped sequences, metrics.py counts clipped tokens.
- Unscorable completions (NaN / inf total reward): as TRL, left out of the group mean and std, advantage
  0 (TRL marks a completion unscorable when every reward function returned None).
- sampling_correction is TRL's vllm_importance_sampling_correction (modes and cap as its
  vllm_importance_sampling_mode / clip_max, the weight multiplying the whole per-token loss, KL included);
  TRL offers it only with vLLM, here it corrects for the engine's own sampler (top-p, top-k, min-p,
  repetition penalty: the distribution the tokens were drawn from is not the one the loss scores).
- steps_per_generation: TRL shuffles the generation batch before splitting it into mini-batches; here
  the split is contiguous (rows in group order), so it is deterministic and needs no extra RNG state.
- advantage_baseline 'leave_one_out' (RLOO) has no GRPOTrainer equivalent (TRL's RLOOTrainer has it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def unscorable(rewards: torch.Tensor) -> torch.Tensor:
    """(N,) total rewards -> (N,) bool: the completion could not be scored (NaN or +-inf total).

    The engine's one rule for such completions (TRL's): they are left out of their group's mean and std
    and get advantage 0, so they neither move the policy nor shift the baseline of the others (a 0.0
    stand-in would). A component that is NaN while the total is finite only means "not applicable".
    """
    return ~torch.isfinite(rewards)


def tied_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) rewards -> (P,) bool: the group's scorable rewards all tie exactly (or fewer than two are
    scorable), so every advantage in it is 0. Decided by comparing values, not by std > 0: in float32
    the std of one group of 8 x 0.7 is ~6e-8, not 0."""
    grouped = rewards.double().view(-1, group_size)  # (P, G)
    finite = torch.isfinite(grouped)
    high = torch.where(finite, grouped, -torch.inf).amax(dim=1)
    low = torch.where(finite, grouped, torch.inf).amin(dim=1)
    return (finite.sum(dim=1) < 2) | (high == low)


def _nanstd(values: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Bessel-corrected std over the non-NaN entries (NaN where fewer than two are left)."""
    keep = ~values.isnan()
    count = keep.sum() if dim is None else keep.sum(dim=dim, keepdim=True)
    mean = values.nanmean() if dim is None else values.nanmean(dim=dim, keepdim=True)
    squares = torch.where(keep, (values - mean) ** 2, 0.0)
    total = squares.sum() if dim is None else squares.sum(dim=dim, keepdim=True)
    return (total / (count - 1)).sqrt()  # count 1 -> 0/0 = NaN, count 0 -> NaN


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale_rewards: str, epsilon: float, baseline: str = "mean"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) rewards, rows grouped by prompt -> (N,) advantages and (N,) group std (for logging).

    A = (r - b) / (std + epsilon), std with Bessel's correction taken over the group ('group'), over
    the whole batch ('batch'), or not dividing at all ('none', Dr. GRPO). The baseline b is the group's
    mean ('mean', GRPO) or the mean of the group's other completions ('leave_one_out', RLOO: an
    unbiased baseline, which is (G / (G - 1)) * (r - group mean) for a group of G scorable rewards).

    Unscorable completions (non-finite reward, see `unscorable`) are left out of every mean and std and
    get advantage 0.

    Computed in float64 and returned in the rewards' dtype. In float32 the mean of G equal rewards is
    often not that reward (8 x 0.7 is off by one ulp), which left a tied group a same-sign advantage of
    up to ~2e-3 instead of 0; in float64 the sum of G float32 values is exact, so the mean is exact.
    """
    grouped = rewards.double().view(-1, group_size)  # (P, G)
    grouped = torch.where(torch.isfinite(grouped), grouped, torch.nan)  # unscorable -> NaN, skipped below
    centred = grouped - grouped.nanmean(dim=1, keepdim=True)  # (P, G), exactly 0 for a tied group
    if baseline == "leave_one_out":
        count = (~grouped.isnan()).sum(dim=1, keepdim=True)  # scorable completions in the group
        # r - mean(others) = (r - mean) * n / (n - 1); a lone scorable completion has no baseline: 0.
        centred = torch.where(count > 1, centred * count / (count - 1).clamp(min=1), 0.0)
    group_std = _nanstd(grouped, dim=1).expand_as(grouped)  # (P, G)
    if scale_rewards == "group":
        centred = centred / (group_std + epsilon)
    elif scale_rewards == "batch":
        centred = centred / (_nanstd(grouped) + epsilon)
    advantages = centred.reshape(-1).nan_to_num(nan=0.0)  # unscorable rows (and lone ones' NaN std) -> 0
    return advantages.to(rewards.dtype), group_std.reshape(-1).nan_to_num(nan=0.0).to(rewards.dtype)


@dataclass(frozen=True)
class LossSettings:
    loss_type: str = "dapo"
    epsilon: float = 0.2  # the config's names throughout: one name per concept
    epsilon_high: float = 0.2
    delta: float | None = None
    importance_sampling_level: str = "token"
    beta: float = 0.0
    kl_bias_correction: bool = False  # k3 term times the (unclipped) importance ratio
    max_new_tokens: int = 256  # dr_grpo's constant normaliser (TRL: max_completion_length)
    sampling_correction: str = "off"  # see sampling_weights; 'off' weights nothing
    sampling_correction_cap: float = 3.0


@dataclass(frozen=True)
class StepTotals:
    """Normalisers that span the whole step (all micro-batches), fixed before the first backward."""

    num_tokens: int  # loss-mask tokens in the step
    num_sequences: int  # completions in the step
    num_micro_batches: int


@dataclass
class LossParts:
    """Per-token pieces of the loss, kept for metrics (all (B, C) unless noted)."""

    ratio: torch.Tensor  # importance ratio actually used (after the delta cap), (B, C)
    kl: torch.Tensor | None  # k3 estimate per token, None when beta == 0
    low_clipped: torch.Tensor  # bool: ratio < 1 - eps with A < 0 (the clip removed the gradient)
    high_clipped: torch.Tensor  # bool: ratio > 1 + eps_high with A > 0


def per_token_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    settings: LossSettings,
    ref_logps: torch.Tensor | None = None,
) -> tuple[torch.Tensor, LossParts]:
    """(B, C) log-probs under the current / old policy, (B,) advantages, (B, C) 0/1 loss mask ->
    (B, C) per-token loss (meaningful where mask is 1) and its parts."""
    log_ratio = logps - old_logps  # (B, C)
    if settings.importance_sampling_level == "sequence":
        # GSPO: the mean log-ratio of the sequence, one ratio for all its tokens.
        log_ratio = (log_ratio * mask).sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        log_ratio = log_ratio.expand_as(logps)
    ratio = torch.exp(log_ratio)  # (B, C)
    clipped = torch.clamp(ratio, 1.0 - settings.epsilon, 1.0 + settings.epsilon_high)
    if settings.delta is not None:
        ratio = torch.clamp(ratio, max=settings.delta)  # two-sided clip: bounds the A < 0 side too
    adv = advantages[:, None]  # (B, 1)
    loss = -torch.min(ratio * adv, clipped * adv)  # (B, C)
    kl = None
    if settings.beta != 0.0:
        assert ref_logps is not None, "beta > 0 needs reference log-probs"
        diff = ref_logps - logps
        kl = torch.exp(diff) - diff - 1.0  # (B, C), k3 estimator of KL(policy || reference)
        if settings.kl_bias_correction:
            # DeepSeek-V3.2: weighting by the (differentiable) ratio makes the gradient the unbiased
            # reverse-KL gradient; the value is unchanged on-policy (ratio = 1).
            kl = kl * torch.exp(log_ratio)
        loss = loss + settings.beta * kl
    parts = LossParts(
        ratio=ratio,
        kl=kl,
        low_clipped=(ratio < 1.0 - settings.epsilon) & (adv < 0),
        high_clipped=(ratio > 1.0 + settings.epsilon_high) & (adv > 0),
    )
    return loss, parts


def sampling_weights(
    trainer_logps: torch.Tensor, sampler_logps: torch.Tensor, mask: torch.Tensor, mode: str, cap: float
) -> torch.Tensor:
    """(B, C) no-grad log-probs of the sampled tokens under the policy that sampled them as the trainer
    scores it (softmax(logits / T)) and under the sampler's own distribution, (B, C) mask -> (B, C)
    importance weights w = p_trainer / p_sampler that correct the loss for the mismatch (truncated IS:
    min(w, cap); masked IS: w, or 0 where w > cap). Sequence modes use the product over the sequence's
    tokens, shared by its tokens. No gradient flows through the weights."""
    diff = ((trainer_logps - sampler_logps) * mask).detach()  # (B, C), 0 on padding
    if mode.startswith("sequence"):
        diff = diff.sum(dim=1, keepdim=True).expand_as(diff)  # log of the product of the token ratios
    weights = torch.exp(diff)
    if mode.endswith("truncate"):
        return weights.clamp(max=cap)
    return weights.masked_fill(weights > cap, 0.0)


def corrected(weights: torch.Tensor, mode: str, cap: float) -> torch.Tensor:
    """(B, C) bool: tokens whose weight the truncation or the mask changed (for the metrics)."""
    return weights == cap if mode.endswith("truncate") else weights == 0.0


def aggregate(loss: torch.Tensor, mask: torch.Tensor, settings: LossSettings, totals: StepTotals) -> torch.Tensor:
    """(B, C) per-token loss of one micro-batch -> its scalar share of the step loss (see module doc)."""
    masked = loss * mask
    if settings.loss_type == "grpo":
        per_sequence = masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (B,)
        return per_sequence.sum() / totals.num_sequences
    if settings.loss_type == "bnpo":
        return masked.sum() / mask.sum().clamp(min=1.0) / totals.num_micro_batches
    if settings.loss_type == "dr_grpo":
        return masked.sum() / (totals.num_sequences * settings.max_new_tokens)
    if settings.loss_type == "dapo":
        return masked.sum() / max(totals.num_tokens, 1)
    raise ValueError(f"unknown loss_type {settings.loss_type!r}")


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where mask is 1 (0 when the mask is empty)."""
    return (values * mask).sum() / mask.sum().clamp(min=1.0)
