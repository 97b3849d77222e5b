"""Reward-hacking detectors that need all completions of a step; reported as `hacking/...` metrics.

Group layout follows the engine: a step's completions come as consecutive blocks of `group_size`
completions of the same prompt.
"""

import math
from collections.abc import Sequence


def repetition_ratio(text: str, n: int = 3) -> float:
    """Share of repeated word n-grams: 1 - unique / total over the text's word n-grams (0.0: none repeat;
    near 1.0: a loop). Texts with fewer than n + 1 words score 0.0."""
    words = text.split()
    total = len(words) - n + 1
    if total < 2:
        return 0.0
    return 1.0 - len({tuple(words[i : i + n]) for i in range(total)}) / total


def groups(items: Sequence, group_size: int) -> list[Sequence]:
    return [items[i : i + group_size] for i in range(0, len(items), group_size)]


def identical_fraction(completions: Sequence[str], group_size: int) -> float:
    """Mean over groups of (G - distinct) / (G - 1): 0.0 all completions differ, 1.0 all identical."""
    parts = groups(completions, group_size)
    return sum((len(g) - len(set(g))) / max(len(g) - 1, 1) for g in parts) / len(parts)


def zero_std_fraction(totals: Sequence[float], group_size: int) -> float:
    """Share of groups whose finite total rewards all tie: they carry no GRPO learning signal."""
    parts = groups(totals, group_size)
    tied = 0
    for group in parts:
        finite = [t for t in group if math.isfinite(t)]
        tied += not finite or max(finite) - min(finite) <= 1e-9
    return tied / len(parts)


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), q in [0, 1]; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def step_detectors(
    completions: Sequence[str], totals: Sequence[float], group_size: int | None, ngram: int = 3
) -> dict[str, float]:
    """hacking/* metrics for one step. Group metrics need group_size to divide the batch."""
    if not completions:
        return {}
    lengths = [float(len(c)) for c in completions]
    repetition = [repetition_ratio(c, ngram) for c in completions]
    metrics = {
        "hacking/completion_chars_mean": sum(lengths) / len(lengths),
        "hacking/completion_chars_p50": quantile(lengths, 0.5),
        "hacking/completion_chars_p95": quantile(lengths, 0.95),
        "hacking/completion_chars_max": max(lengths),
        "hacking/repetition_mean": sum(repetition) / len(repetition),
        "hacking/repetition_max": max(repetition),
    }
    if group_size and group_size > 1 and len(completions) % group_size == 0:
        metrics["hacking/identical_in_group_frac"] = identical_fraction(completions, group_size)
        metrics["hacking/zero_std_group_frac"] = zero_std_fraction(totals, group_size)
    return metrics
