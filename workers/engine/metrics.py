"""Names and meanings of the per-step metrics (StepReport.metrics), documented in one place.

Names are '/'-separated families. Rewards and completion statistics cover every completion generated
in the step (with dynamic sampling, also the groups that were dropped); loss, KL and clip fractions
cover the tokens that entered the loss and are averaged over the num_iterations updates. Entropy covers
the same tokens but is computed on the first iteration only (the policy that sampled the batch, before
the step's updates): later iterations would need the entropy again for a number that barely moves.
"""

from __future__ import annotations

import resource
import sys

import torch

METRICS: dict[str, str] = {
    "reward/mean": "mean total (weighted) reward of the step's completions",
    "reward/std": "std of the total reward over the step's completions (Bessel-corrected)",
    "reward/min": "lowest total reward in the step",
    "reward/max": "highest total reward in the step",
    "reward/<component>/mean": "mean raw (unweighted) score of one reward component",
    "reward/<component>/std": "std of that component's raw score",
    "reward/frac_zero_std": "fraction of groups whose scorable rewards all tie exactly (no learning signal)",
    "reward/unscorable_frac": "fraction of completions whose total reward is NaN or infinite (the scorer could "
    "not score them): left out of their group's mean and std, advantage 0, and left out of reward/*",
    "advantage/mean": "mean advantage of the trained completions (about 0 by construction)",
    "advantage/std": "std of the advantages",
    "advantage/abs_mean": "mean |advantage|: how much signal the step carries",
    "completion/length_mean": "mean completion length in tokens (EOS included)",
    "completion/length_min": "shortest completion in tokens",
    "completion/length_max": "longest completion in tokens",
    "completion/truncated_frac": "fraction of completions that hit max_new_tokens (no EOS or stop string)",
    "loss": "the loss whose gradient was applied, mean over the step's optimiser updates (num_iterations * "
    "steps_per_generation)",
    "kl": "mean k3 KL(policy || reference) per loss token; only reported when beta > 0",
    "entropy": "mean per-token entropy (nats) of softmax(logits / temperature) on the loss tokens, computed on the "
    "first iteration only (the policy before the step's updates), not averaged over num_iterations",
    "clip/low_frac": "fraction of loss tokens with ratio < 1 - epsilon and negative advantage",
    "clip/high_frac": "fraction of loss tokens with ratio > 1 + epsilon_high and positive advantage",
    "clip/region_frac": "fraction of loss tokens clipped on either side",
    "grad_norm": "global gradient norm before clipping, mean over the step's optimiser updates",
    "learning_rate": "learning rate of the step's first optimiser update",
    "throughput/tokens_per_s": "completion tokens generated per second of the whole step",
    "time/step_s": "wall time of the step (everything below, plus bookkeeping)",
    "time/generation_s": "sampling the completions (prefill + decode)",
    "time/scoring_s": "running the reward function",
    "time/reference_s": "no-grad forwards: old-policy (num_iterations or steps_per_generation > 1), reference "
    "(beta > 0) log-probs",
    "sampling/logp_diff_mean": "mean |log p_trainer - log p_sampler| of the sampled loss tokens: p_sampler is the "
    "distribution the sampler drew from (after temperature, top-k, top-p, min-p, repetition penalty), p_trainer the "
    "sampling policy as the loss scores it (softmax(logits / temperature)); 0 up to rounding for plain fp32 sampling",
    "sampling/logp_diff_max": "largest |log p_trainer - log p_sampler| over the step's loss tokens",
    "sampling/kl": "k3 estimate of KL(sampler || trainer) per loss token (r - 1 - log r, r = p_trainer / p_sampler): "
    "how off-policy the update is before any correction",
    "sampling/is_weight_mean": "mean importance weight applied by sampling_correction per loss token (only when on)",
    "sampling/is_corrected_frac": "fraction of loss tokens whose weight sampling_correction truncated or masked",
    "time/training_s": "forward + backward of the policy, all micro-batches and iterations",
    "time/optimizer_s": "gradient clipping, AdamW step and schedule",
    "time/device_s": "device-seconds of the step: its wall time x the devices (ranks) it ran on",
    "usage/tokens_sampled": "completion tokens generated in the step (dropped groups included)",
    "usage/prompt_tokens": "prompt tokens prefilled in the step (each completion's prompt)",
    "usage/tokens_trained": "completion tokens that entered the loss",
    "usage/reward_calls": "reward component calls: completions scored x reward components",
    "time/allreduce_s": "several devices: summing the gradients over the ranks (all-reduce)",
    "time/gather_s": "several devices (fsdp): gathering the weight shards before generation",
    "distributed/world_size": "number of ranks (devices) the step ran on; only with several devices",
    "memory/peak_rss_mb": "peak resident memory of the process so far (MiB)",
    "memory/peak_gpu_mb": "peak GPU memory allocated so far (MiB); only on GPU",
    "dynamic_sampling/dropped_groups": "groups dropped for tied rewards (only with dynamic_sampling)",
    "dynamic_sampling/rounds": "generation rounds in the step (1 = no resampling; dynamic_sampling only)",
    "scorer/<name>": "metrics reported by the reward function itself (RewardBatch.metrics)",
}


def describe(name: str) -> str:
    """The description of a metric name, resolving per-component and scorer names."""
    if name in METRICS:
        return METRICS[name]
    parts = name.split("/")
    if parts[0] == "reward" and len(parts) == 3:
        return METRICS[f"reward/<component>/{parts[2]}"]
    if parts[0] == "scorer":
        return METRICS["scorer/<name>"]
    raise KeyError(name)


def summary(values: torch.Tensor, prefix: str, stats: tuple[str, ...] = ("mean", "std")) -> dict[str, float]:
    """{prefix/mean, prefix/std, ...} of a 1-D tensor (std with Bessel's correction; 0 for one value).

    NaN entries (a reward component that did not apply, or a failed call with on_error='skip') and
    infinite ones (an unscorable completion) are left out; with no value left the stats are omitted
    rather than reported as NaN.
    """
    values = values.double()
    values = values[torch.isfinite(values)]
    if values.numel() == 0:
        return {}
    out = {}
    for stat in stats:
        if stat == "std":
            out[f"{prefix}/std"] = float(values.std()) if values.numel() > 1 else 0.0
        else:
            out[f"{prefix}/{stat}"] = float(getattr(values, stat)())
    return out


def peak_memory(device: torch.device) -> dict[str, float]:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    metrics = {"memory/peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale}
    if device.type == "cuda":
        metrics["memory/peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return metrics


def is_wall_clock(name: str) -> bool:
    """Metrics that measure time or memory: they differ between otherwise identical runs."""
    return any(part in name for part in ("time/", "latency", "throughput/", "memory/"))
