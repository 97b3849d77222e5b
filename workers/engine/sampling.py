"""Next-token sampling: Hugging Face `generate` semantics, with a cheaper exact sampler.

The logit processors follow transformers' order and definitions (repetition penalty, then
temperature, top-k, top-p, min-p), so a job means the same thing here as with `generate`. The draw itself is
inverse-CDF sampling: one uniform number per row, located in the cumulative distribution with a
binary search (two-level: blocks, then one block). It samples exactly the softmax distribution (the
CDF is accumulated in float64, so rounding distorts no probability above ~1e-15) at a fraction of
`torch.multinomial`'s CPU cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_k: int = 0  # 0 disables
    top_p: float = 1.0  # 1.0 disables
    repetition_penalty: float = 1.0  # 1.0 disables
    min_p: float = 0.0  # 0.0 disables
    greedy: bool = False  # argmax instead of sampling (evaluation)


def apply_repetition_penalty(logits: torch.Tensor, history: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL penalty on every token id in `history` (R, T): negative logits are multiplied by the
    penalty, positive ones divided, as in transformers' RepetitionPenaltyLogitsProcessor."""
    seen = logits.gather(1, history)  # (R, T); repeated ids gather the same value, so scatter is consistent
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(1, history, seen)


def apply_top_k(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep the logits >= the k-th largest (ties at the boundary are kept, as in transformers)."""
    top_k = min(top_k, logits.size(-1))
    kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (R, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def apply_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus: drop the least likely tokens whose cumulative mass stays <= 1 - top_p; the most likely
    token always survives (transformers' TopPLogitsWarper with min_tokens_to_keep=1)."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1.0 - top_p)
    remove_sorted[:, -1] = False
    remove = remove_sorted.scatter(1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def apply_min_p(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Drop tokens whose probability is below min_p times the most likely token's; the most likely
    token always survives (transformers' MinPLogitsWarper with min_tokens_to_keep=1)."""
    probs = torch.softmax(logits, dim=-1)
    remove = probs < min_p * probs.amax(dim=-1, keepdim=True)
    remove.scatter_(1, probs.argmax(dim=-1, keepdim=True), False)
    return logits.masked_fill(remove, float("-inf"))


def process_logits(logits: torch.Tensor, params: SamplingParams, history: torch.Tensor | None) -> torch.Tensor:
    """(R, V) raw next-token logits -> (R, V) float32 logits of the sampling distribution."""
    logits = logits.float()
    if params.repetition_penalty != 1.0 and history is not None:
        logits = apply_repetition_penalty(logits, history, params.repetition_penalty)
    if params.greedy:
        return logits
    if params.temperature != 1.0:
        logits = logits / params.temperature
    if params.top_k > 0:
        logits = apply_top_k(logits, params.top_k)
    if params.top_p < 1.0:
        logits = apply_top_p(logits, params.top_p)
    if params.min_p > 0.0:
        logits = apply_min_p(logits, params.min_p)
    return logits


SAMPLE_BLOCK = 128  # tokens per block of the two-level search


def _first_above(cdf: torch.Tensor, value: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
    """(R, n) nondecreasing cdf, (R, 1) values -> (R,) first index whose cdf exceeds the value. When
    rounding puts the value at or past the end, the last index with nonzero `mass` (R, n) instead."""
    index = torch.searchsorted(cdf, value, right=True).squeeze(1)  # (R,)
    overflow = index >= cdf.size(1)
    if bool(overflow.any()):
        last_nonzero = cdf.size(1) - 1 - (mass.flip(-1) > 0).int().argmax(dim=-1)
        index = torch.where(overflow, last_nonzero, index)
    return index


def inverse_cdf_sample(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Draw one token per row of (R, V) logits from softmax(logits). Returns (R,) int64."""
    return sample_with_logprobs(logits, generator)[0]


def sample_with_logprobs(logits: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row of (R, V) logits from softmax(logits). Returns (R,) int64 tokens and (R,)
    float32 log-probabilities of the drawn tokens under that distribution (the sampler's own log-probs;
    the log of the softmax already computed for the draw, so they cost a gather and a log).

    One uniform number u per row picks the first token whose cumulative probability exceeds u times
    the total: token i is hit with probability probs[i] / total. The search runs in two levels, over
    blocks of SAMPLE_BLOCK tokens and then inside the chosen block, so only the block masses and one
    block per row are accumulated (in float64) instead of the whole vocabulary. Zero-probability tokens
    and blocks add nothing to the cumulative sums, so they can never be the first to exceed u.
    """
    probs = torch.softmax(logits, dim=-1)  # (R, V) float32; -inf logits get exactly 0
    rows, vocab = probs.shape
    blocks = -(-vocab // SAMPLE_BLOCK)
    if blocks * SAMPLE_BLOCK != vocab:
        probs = torch.nn.functional.pad(probs, (0, blocks * SAMPLE_BLOCK - vocab))  # zero probability
    probs = probs.view(rows, blocks, SAMPLE_BLOCK)
    block_mass = probs.sum(dim=-1, dtype=torch.float64)  # (R, blocks)
    block_cdf = block_mass.cumsum(dim=-1)
    if isinstance(generator, torch.Generator):
        uniform = torch.rand(rows, 1, generator=generator, device=logits.device, dtype=torch.float64)
    else:  # streams.RowDraws: one stream per prompt group (multi-rank runs)
        uniform = generator.uniform(logits.device)
    target = uniform * block_cdf[:, -1:]  # (R, 1)
    block = _first_above(block_cdf, target, block_mass)  # (R,)
    before = torch.where(block > 0, block_cdf.gather(1, (block - 1).clamp(min=0)[:, None]).squeeze(1), 0.0)
    inside = probs[torch.arange(rows, device=logits.device), block]  # (R, SAMPLE_BLOCK)
    offset = _first_above(inside.cumsum(dim=-1, dtype=torch.float64), (target.squeeze(1) - before)[:, None], inside)
    chosen = inside.gather(1, offset[:, None]).squeeze(1)  # (R,) probability of the drawn token
    return block * SAMPLE_BLOCK + offset, chosen.log()


def next_tokens(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator,
    history: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(R, V) raw logits of the last position -> (R,) sampled (or greedy) token ids, and (R,) their
    log-probs under the distribution they were drawn from (after every processor); None when greedy."""
    processed = process_logits(logits, params, history)
    if params.greedy:
        return processed.argmax(dim=-1), None
    return sample_with_logprobs(processed, generator)
