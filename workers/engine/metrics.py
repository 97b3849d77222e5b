"""Names and meanings of the per-step metrics (StepReport.metrics), documented in one place.

Names are '/'-separated families. Rewards and completion statistics cover every completion generated
in the step (with dynamic sampling, also the groups that were dropped); loss, KL, entropy and clip
fractions cover the tokens that entered the loss and are averaged over the num_iterations updates.
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
    "reward/frac_zero_std": "fraction of groups whose rewards all tie (no learning signal)",
    "advantage/mean": "mean advantage of the trained completions (about 0 by construction)",
    "advantage/std": "std of the advantages",
    "advantage/abs_mean": "mean |advantage|: how much signal the step carries",
    "completion/length_mean": "mean completion length in tokens (EOS included)",
    "completion/length_min": "shortest completion in tokens",
    "completion/length_max": "longest completion in tokens",
    "completion/truncated_frac": "fraction of completions that hit max_new_tokens (no EOS or stop string)",
    "loss": "the step's loss (the value whose gradient was applied), mean over the num_iterations updates",
    "kl": "mean k3 KL(policy || reference) per loss token; only reported when beta > 0",
    "entropy": "mean per-token entropy (nats) of the policy's sampling distribution on the loss tokens",
    "clip/low_frac": "fraction of loss tokens with ratio < 1 - epsilon and negative advantage",
    "clip/high_frac": "fraction of loss tokens with ratio > 1 + epsilon_high and positive advantage",
    "clip/region_frac": "fraction of loss tokens clipped on either side",
    "grad_norm": "global gradient norm before clipping, mean over the num_iterations updates",
    "learning_rate": "learning rate of the step's first optimiser update",
    "throughput/tokens_per_s": "completion tokens generated per second of the whole step",
    "time/step_s": "wall time of the step (everything below, plus bookkeeping)",
    "time/generation_s": "sampling the completions (prefill + decode)",
    "time/scoring_s": "running the reward function",
    "time/reference_s": "no-grad forwards: old-policy (num_iterations > 1), reference (beta > 0) log-probs",
    "time/training_s": "forward + backward of the policy, all micro-batches and iterations",
    "time/optimizer_s": "gradient clipping, AdamW step and schedule",
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

    NaN entries (a reward component that did not apply, or a failed call with on_error='skip') are left
    out; with no value left the stats are omitted rather than reported as NaN.
    """
    values = values.double()
    values = values[~values.isnan()]
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
