"""The matmul floor of a GRPO step: this machine's matmul rate and the step's ideal FLOPs.

Ideal FLOPs count only the matrix multiplications that the step cannot avoid: no padding, each prompt
prefilled once per group (in generation and in the scoring/training forwards), finished rows dropped
from decoding, and the LM head only where a logit is needed (every decode step, since sampling needs
the full distribution; only the completion tokens when scoring). A multiply-add is 2 FLOPs; the
backward pass costs twice the forward. Element-wise work (softmax, norms, the optimiser) is not
counted, so the floor is a lower bound that no real trainer reaches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int

    @classmethod
    def from_config(cls, config) -> Shape:  # a transformers Qwen2Config
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(
            hidden=config.hidden_size,
            layers=config.num_hidden_layers,
            heads=config.num_attention_heads,
            kv_heads=config.num_key_value_heads,
            head_dim=head_dim,
            intermediate=config.intermediate_size,
            vocab=config.vocab_size,
        )

    @property
    def linear_per_token(self) -> int:
        """Forward FLOPs of the layers' projections for one token (q, k, v, o, gate, up, down)."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        per_layer = self.hidden * q + 2 * self.hidden * kv + q * self.hidden + 3 * self.hidden * self.intermediate
        return 2 * self.layers * per_layer

    def attention(self, first: int, count: int) -> int:
        """Forward FLOPs of scores and weighted values for `count` tokens at positions first..first+count-1
        (causal: the token at position i attends to i + 1 keys)."""
        keys = count * first + count * (count + 1) // 2  # sum of (i + 1) over the positions
        return 4 * self.layers * self.heads * self.head_dim * keys

    def tokens(self, first: int, count: int) -> int:
        """Backbone forward FLOPs for `count` tokens starting at position `first`."""
        return count * self.linear_per_token + self.attention(first, count)

    @property
    def head_per_token(self) -> int:
        return 2 * self.hidden * self.vocab


def ideal_step_flops(
    shape: Shape, prompt_lengths: list[int], completion_lengths: list[int], group_size: int, beta: float
) -> dict[str, float]:
    """Ideal FLOPs of one step by phase, for P prompts and N = P * G completions (rows grouped by prompt)."""
    generation = scoring_forward = 0
    for row, length in enumerate(completion_lengths):
        prompt = prompt_lengths[row // group_size]
        if row % group_size == 0:  # the prompt: once per group
            generation += shape.tokens(0, prompt) + shape.head_per_token  # prefill, logits of the last position
            scoring_forward += shape.tokens(0, prompt)
        # Decode: the first token comes from the prefill; each further one needs a forward of the previous.
        generation += shape.tokens(prompt, length - 1) + (length - 1) * shape.head_per_token
        # Scoring / training forward: completion tokens but the last as inputs, head on every completion token.
        scoring_forward += shape.tokens(prompt, length - 1) + length * shape.head_per_token
    phases = {
        "generation": float(generation),
        "reference": float(scoring_forward if beta > 0 else 0),
        "training": float(3 * scoring_forward),  # forward + backward (2x)
    }
    phases["total"] = sum(phases.values())
    return phases


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, dtype: torch.dtype, sizes: tuple[int, ...] = (512, 1024, 2048)) -> float:
    """Best sustained GFLOP/s of square matmuls in `dtype` on `device` (best of a few timed rounds)."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        out = torch.empty(n, n, device=device, dtype=dtype)
        torch.mm(a, b, out=out)  # warm-up
        repeats = max(1, int(2e9 / (2 * n**3)))  # about 2 GFLOP per round (more on a GPU)
        if device.type == "cuda":
            repeats *= 100
        for _ in range(3):
            _sync(device)
            started = time.perf_counter()
            for _ in range(repeats):
                torch.mm(a, b, out=out)
            _sync(device)
            best = max(best, 2 * n**3 * repeats / (time.perf_counter() - started) / 1e9)
    return best
