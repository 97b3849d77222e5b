"""The one seam between the plain transformers path and the fast kernels (workers/engine/kernels/).

Rollout and scoring need three pieces that a kernel can do faster than transformers' own code:
- a KV cache for a rollout of known length (`rollout_cache`),
- a decode step: one token per row -> next-token logits (`decode_step`),
- the LM head's log-prob of chosen tokens (`head_logprobs`).
`Backend` is the plain transformers path for each: the model's DynamicCache, its forward, autograd
through the head. `select_backend` picks, once per run, this or the kernels (`GRPOConfig.fast_paths`);
each kernel checks that it reproduces the model exactly (device, dtype, autocast, model family,
adapters) and otherwise hands the call back to the plain piece here. So rollout.py and logprobs.py read
as the transformers path, and no kernel detail leaks into them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import cast

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedConfig

# (R,) tokens, (R,) positions, (R, L) attention mask over the cache + this token, the cache -> (R, V) logits
DecodeStep = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, DynamicCache], torch.Tensor]
# (T, H) hidden, (T,) targets, temperature, with_entropy -> (T,) log p(target), (T,) entropies or None
HeadLogProbs = Callable[[torch.Tensor, torch.Tensor, float, bool], tuple[torch.Tensor, torch.Tensor | None]]


def unwrap(model: nn.Module) -> nn.Module:
    """The transformers CausalLM inside a peft wrapper (adapters stay active), or the model itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def cache_keyword(module: nn.Module) -> str:
    """transformers 5.2x renamed the forward's `past_key_values` argument to `cache`; accept both."""
    forward = unwrap(module).forward
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def model_step(
    model: nn.Module, tokens: torch.Tensor, positions: torch.Tensor, attention: torch.Tensor, cache: DynamicCache
) -> torch.Tensor:
    """(R,) tokens at (R,) positions -> (R, V) next-token logits, through the model's own forward."""
    logits: torch.Tensor = model(
        input_ids=tokens[:, None],
        attention_mask=attention,
        position_ids=positions[:, None],
        **{cache_keyword(model): cache},
        use_cache=True,
    ).logits[:, -1]
    return logits


def autograd_head_logprobs(
    head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool, chunk: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(T, H) hidden states, (T,) target ids -> (T,) log p(target), and (T,) entropies (no grad) if asked.
    Logits are computed `chunk` rows at a time and upcast to float32 per chunk; autograd keeps each
    chunk's logits for backward."""
    logps, entropies = [], []
    for start in range(0, hidden.size(0), chunk):
        logits = head(hidden[start : start + chunk]).float() / temperature  # (t, V)
        normaliser = torch.logsumexp(logits, dim=-1)  # (t,)
        chosen = logits.gather(1, targets[start : start + chunk, None]).squeeze(1)  # (t,)
        logps.append(chosen - normaliser)
        if with_entropy:
            with torch.no_grad():
                probs = torch.softmax(logits, dim=-1)
                entropies.append(normaliser - (probs * logits).sum(dim=-1))
    empty = hidden.new_zeros(0, dtype=torch.float32)
    logp = torch.cat(logps) if logps else empty
    entropy = (torch.cat(entropies) if entropies else empty) if with_entropy else None
    return logp, entropy


class Backend:
    """The plain transformers path. Subclasses (the kernels) override a piece where they are faster."""

    name = "transformers"

    def rollout_cache(self, model: nn.Module, capacity: int) -> DynamicCache:
        """A cache for a rollout of at most `capacity` positions per row."""
        return DynamicCache(config=cast(PreTrainedConfig, model.config))

    def decode_step(self, model: nn.Module, cache: DynamicCache, rows: int) -> DecodeStep:
        """The step that decodes `rows` rows of `model` into `cache` (built once per rollout)."""
        return functools.partial(model_step, model)

    def head_logprobs(self, head: nn.Module, chunk: int) -> HeadLogProbs:
        """Log-probs through `head`, `chunk` rows at a time (built once per scoring pass: the head's
        weight does not change while it is used)."""
        return lambda hidden, targets, temperature, with_entropy: autograd_head_logprobs(
            head, hidden, targets, temperature, with_entropy, chunk
        )


def select_backend(fast_paths: bool = True) -> Backend:
    """The run's backend: the kernels when `fast_paths` (each still falls back to the plain piece where
    it would not be exact), else the plain transformers path throughout."""
    if not fast_paths:
        return Backend()
    from workers.engine.kernels import Kernels  # the kernels subclass Backend: imported here, not at the top

    return Kernels()
