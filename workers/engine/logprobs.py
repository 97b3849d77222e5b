"""Per-token log-probs of completions: the same values as one full forward of each row's prompt +
completion, computed on little more than the tokens that matter.

- Each distinct prompt runs once (a GRPO group's G rows share it); its K/V cache is handed to the rows
  that continue it, and gradients flow back into the prompt through that cache.
- Completions run in length buckets, each trimmed to its own longest row, so padding is mostly skipped.
- The LM head runs only on scored positions (completion tokens that are not padding), in chunks,
  through the run's backend (backend.py): autograd, or the kernels' chunked head, which keeps no
  logits for backward (workers/engine/kernels/lm_head.py).
Models whose cache is not a plain DynamicCache (sliding windows, ...) or that run with gradient
checkpointing (which turns the cache off in training) take the plain path: one forward per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from workers.engine.backend import Backend, cache_keyword, select_backend, unwrap

CHUNK_TOKENS = 512  # rows of the LM head computed at once; bounds the head's memory at 512 x vocab floats


# Completion buckets, per device type. A bucket costs a forward (and backward) call of its own, worth
# about `overhead` padded tokens of compute (on a GPU a call costs far more than a token); and at most
# `max_tokens` (rows x width) run at once, which bounds the activations a training bucket holds.
@dataclass(frozen=True)
class BucketCosts:
    overhead: int
    max_tokens: int


BUCKET_COSTS = {"cpu": BucketCosts(overhead=64, max_tokens=512), "cuda": BucketCosts(overhead=1024, max_tokens=16384)}


def length_buckets(lengths: list[int], overhead: int, max_tokens: int | None = None) -> list[list[int]]:
    """Split rows into buckets minimising padded tokens + `overhead` per bucket, each bucket holding at
    most `max_tokens` padded tokens (or one row). Each bucket is a run of rows in length order, so an
    optimal split is found exactly by dynamic programming over that order."""
    order = sorted(range(len(lengths)), key=lambda row: (-lengths[row], row))  # longest first, stable
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[i]: cost of the first i rows of `order`
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(end):
            padded = (end - start) * lengths[order[start]]  # rows padded to the longest
            if max_tokens is not None and padded > max_tokens and end - start > 1:
                continue
            cost = best[start] + overhead + padded
            if cost < best[end]:
                best[end], cut[end] = cost, start
    buckets, end = [], n
    while end > 0:
        buckets.append(order[cut[end] : end])
        end = cut[end]
    return buckets[::-1]


def _shares_prompts(decoder: nn.Module) -> bool:
    """The shared-prompt path needs the cache in training, which gradient checkpointing turns off."""
    return not any(getattr(module, "gradient_checkpointing", False) is True for module in decoder.modules())


def _full_forward_hidden(
    decoder: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
) -> torch.Tensor:
    """(B, C, H) hidden states predicting each completion token, from one forward per row."""
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)  # (B, Lp + C)
    attention = torch.cat([prompt_mask, completion_mask], dim=1)
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)  # count real tokens: left padding shifts nothing
    out = decoder(input_ids=input_ids, attention_mask=attention, position_ids=positions)
    hidden: torch.Tensor = out.last_hidden_state
    return hidden[:, prompt_ids.size(1) - 1 : -1]  # position i predicts token i + 1


@dataclass
class _Prompts:
    """The distinct prompts of a batch, run once: what the rows that continue them need."""

    inverse: torch.Tensor  # (B,) row -> its distinct prompt
    mask: torch.Tensor  # (U, Lp) attention mask of the distinct prompts (left-padded)
    last: torch.Tensor  # (U, H) hidden state of each prompt's last token (predicts completion token 0)
    keys: list[torch.Tensor]  # per layer (U, kv heads, Lp, head dim)
    values: list[torch.Tensor]
    # With backward_per_bucket, the tensors above are detached leaves and these are the originals, into
    # which the gradients gathered on the leaves are pushed at the end (backward_prompts).
    originals: list[torch.Tensor] | None = None

    def leaves(self) -> list[torch.Tensor]:
        return [self.last, *self.keys, *self.values]


def _run_prompts(decoder: nn.Module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> _Prompts | None:
    """Run each distinct prompt once, or return None when the model's cache is not plain DynamicLayers."""
    width = prompt_ids.size(1)
    distinct, inverse = torch.unique(torch.cat([prompt_ids, prompt_mask], dim=1), dim=0, return_inverse=True)
    ids, mask = distinct[:, :width], distinct[:, width:]
    first = int(mask.any(dim=0).int().argmax())  # columns that are padding in every prompt are dropped
    ids, mask = ids[:, first:], mask[:, first:]
    cache = DynamicCache()
    out = decoder(
        input_ids=ids,
        attention_mask=mask,
        position_ids=(mask.cumsum(dim=1) - 1).clamp(min=0),
        use_cache=True,
        **{cache_keyword(decoder): cache},
    )
    if not all(type(layer) is DynamicLayer for layer in cache.layers):
        return None
    last = out.last_hidden_state[:, -1]  # left padding: the last column is a real token
    layers: list[Any] = list(cache.layers)  # DynamicLayers, checked above
    return _Prompts(inverse, mask, last, [la.keys for la in layers], [la.values for la in layers])


class CompletionScorer:
    """Log-probs of a batch's completions, computed bucket by bucket (see the module docstring).

    With `backward_per_bucket`, each bucket's graph can be backpropagated (and freed) on its own: the
    prompts' states enter the buckets as detached leaves, and `backward_prompts()` finally carries the
    gradients gathered on them into the prompt forward. Peak memory is then the prompts' graph plus one
    bucket's, instead of the whole batch's.
    """

    def __init__(
        self,
        model: nn.Module,
        prompt_ids: torch.Tensor,
        prompt_mask: torch.Tensor,
        completion_ids: torch.Tensor,
        completion_mask: torch.Tensor,
        *,
        temperature: float,
        backward_per_bucket: bool = False,
        backend: Backend | None = None,
    ) -> None:
        base: Any = unwrap(model)  # a transformers CausalLM (nn.Module types its methods loosely)
        # peft injects its adapters into the base model's layers, so the bare decoder runs them too.
        self.decoder: nn.Module = base.get_decoder()
        self.head: nn.Module = base.get_output_embeddings()
        self.prompt_ids, self.prompt_mask = prompt_ids, prompt_mask
        self.completion_ids, self.completion_mask = completion_ids, completion_mask
        self.temperature = temperature
        # Built once: the head's weight does not change while a scorer lives (the optimiser steps after
        # its backward), so the kernels may pack it.
        self.head_logprobs = (backend or select_backend()).head_logprobs(self.head, CHUNK_TOKENS)
        self.prompts = _run_prompts(self.decoder, prompt_ids, prompt_mask) if _shares_prompts(self.decoder) else None
        self.backward_per_bucket = backward_per_bucket and torch.is_grad_enabled()
        if self.prompts is not None and self.backward_per_bucket:
            originals = self.prompts.leaves()
            # (a state that needs no gradient, e.g. keys of a layer without adapters, stays a plain tensor)
            leaves = [t.detach().requires_grad_(t.requires_grad) for t in originals]
            n = len(self.prompts.keys)
            self.prompts = _Prompts(
                self.prompts.inverse, self.prompts.mask, leaves[0], leaves[1 : 1 + n], leaves[1 + n :], originals
            )

    def buckets(self) -> list[torch.Tensor]:
        """Row indices of each bucket; one bucket of every row on the full-forward path."""
        device = self.completion_ids.device
        if self.prompts is None:
            return [torch.arange(self.completion_ids.size(0), device=device)]
        costs = BUCKET_COSTS[device.type if device.type in BUCKET_COSTS else "cuda"]
        lengths = self.completion_mask.sum(dim=1).tolist()
        # The token cap bounds the graph a bucket holds until its own backward; without one, nothing to bound.
        buckets = length_buckets(lengths, costs.overhead, costs.max_tokens if self.backward_per_bucket else None)
        return [torch.tensor(rows, device=device) for rows in buckets]

    def hidden(self, rows: torch.Tensor) -> torch.Tensor:
        """(n, w, H) hidden states predicting completion tokens 0..w-1 of `rows` (w: their longest
        completion; the whole width on the full-forward path): token 0 comes from the prompt's last
        position, token j from completion token j - 1."""
        if self.prompts is None:
            return _full_forward_hidden(
                self.decoder, self.prompt_ids[rows], self.prompt_mask[rows], self.completion_ids[rows],
                self.completion_mask[rows],
            )  # fmt: skip
        prompts = self.prompts
        owner = prompts.inverse[rows]  # (n,) the distinct prompt of each row
        width = max(int(self.completion_mask[rows].sum(dim=1).max()), 1)
        # index_select, not [owner]: rows share a prompt, so the backward sums several gradients into one
        # prompt row, and indexing's backward (index_put_ with accumulate) adds them with atomics in
        # thread order on CPU, which made two identical runs differ in the last bits after one step;
        # index_select's backward (index_add_) adds them in a fixed order.
        first = prompts.last.index_select(0, owner)[:, None]  # (n, 1, H)
        if width == 1:
            return first
        cache = DynamicCache(
            ddp_cache_data=[
                (k.index_select(0, owner), v.index_select(0, owner))
                for k, v in zip(prompts.keys, prompts.values, strict=True)
            ]
        )
        prompt_mask = prompts.mask[owner]
        attention = torch.cat([prompt_mask, self.completion_mask[rows, : width - 1]], dim=1)
        positions = prompt_mask.sum(dim=1, keepdim=True) + torch.arange(width - 1, device=rows.device)
        out = self.decoder(
            input_ids=self.completion_ids[rows, : width - 1],
            attention_mask=attention,
            position_ids=positions,
            use_cache=True,
            **{cache_keyword(self.decoder): cache},
        ).last_hidden_state  # (n, w - 1, H)
        return torch.cat([first, out], dim=1)

    def logprobs(self, rows: torch.Tensor, with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(n, w) log-probs of the completion tokens of `rows` (0 on padding), w as in hidden(), and
        (n, w) entropies when asked."""
        hidden = self.hidden(rows)
        scored = self.completion_mask[rows, : hidden.size(1)].bool()  # (n, w)
        targets = self.completion_ids[rows, : hidden.size(1)][scored]
        logp, entropy = self.head_logprobs(hidden[scored], targets, self.temperature, with_entropy)
        logps = torch.zeros(scored.shape, dtype=torch.float32, device=hidden.device).masked_scatter(scored, logp)
        if entropy is not None:
            entropy = torch.zeros_like(logps).masked_scatter(scored, entropy)
        return logps, entropy

    def backward_prompts(self) -> None:
        """After every bucket's backward: carry the gradients gathered on the prompt leaves further."""
        if self.prompts is None or self.prompts.originals is None:
            return
        pairs = [
            (o, t.grad)
            for o, t in zip(self.prompts.originals, self.prompts.leaves(), strict=True)
            if t.grad is not None
        ]
        if pairs:
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])


def completion_logprobs(
    model: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    temperature: float,
    with_entropy: bool = False,
    backend: Backend | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, Lp) left-padded prompts + (B, C) right-padded completions -> (B, C) log-probs of each
    completion token under softmax(logits / temperature) (0 where completion_mask is 0), and (B, C)
    entropies when asked. Positions count real tokens only, as during rollout. Differentiable as one
    graph (for separate backward passes per bucket, use CompletionScorer)."""
    scorer = CompletionScorer(
        model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature=temperature, backend=backend
    )
    B, C = completion_ids.shape
    logps = torch.zeros((B, C), dtype=torch.float32, device=completion_ids.device)
    entropy = torch.zeros_like(logps) if with_entropy else None
    for rows in scorer.buckets():
        part, part_entropy = scorer.logprobs(rows, with_entropy)
        logps = logps.index_put((rows[:, None], torch.arange(part.size(1), device=rows.device)), part)
        if entropy is not None and part_entropy is not None:  # both or neither: with_entropy
            entropy[rows, : part.size(1)] = part_entropy
    return logps, entropy
