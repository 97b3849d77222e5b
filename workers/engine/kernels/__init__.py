"""Fast kernels for rollout and scoring, behind the Backend seam (workers/engine/backend.py).

- kv_cache.py: a rollout cache preallocated for the whole rollout (appending a step copies nothing).
- lean_decode.py: the Llama / Qwen2 decode step without transformers' per-call machinery, its
  projections fused and packed once per rollout.
- packed_linear.py: no-grad fp32 CPU matmuls from a weight packed once for oneDNN (private torch ops).
- lm_head.py: the head's log-probs in chunks, recomputing logits in backward instead of keeping them.

Each kernel is used only where it reproduces the plain path (the tests compare the two); anywhere
else `Kernels` hands the call to the plain piece it overrides. `GRPOConfig.fast_paths = False` turns
them all off (backend.select_backend).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import DynamicCache

from workers.engine.backend import Backend, DecodeStep, HeadLogProbs
from workers.engine.kernels.kv_cache import rollout_cache
from workers.engine.kernels.lean_decode import lean_decode_step
from workers.engine.kernels.lm_head import chunked_selected_logprobs
from workers.engine.kernels.packed_linear import FrozenLinear, onednn_packing_available


def pack_head(head: nn.Module, chunk: int) -> FrozenLinear | None:
    """A plain fp32 CPU head's weight packed once for the logits of many chunks (packed_linear.py: ~1.25x
    for 512 rows); None where it would not be used (another head, another device or dtype, autocast)."""
    if type(head) is not nn.Linear or not onednn_packing_available(head.weight):
        return None
    if torch.is_autocast_enabled(head.weight.device.type):  # the head computes in bf16 there
        return None
    return FrozenLinear(head.weight, head.bias, chunk, row_multiple=64)


class Kernels(Backend):
    """The kernels where they are exact, the plain transformers pieces elsewhere."""

    name = "kernels"

    def rollout_cache(self, model: nn.Module, capacity: int) -> DynamicCache:
        # preallocated layers where the model's cache would be plain DynamicLayers, else the model's own
        return rollout_cache(model, capacity)

    def decode_step(self, model: nn.Module, cache: DynamicCache, rows: int) -> DecodeStep:
        lean = lean_decode_step(model, cache, rows)  # None where it would not be exact
        return lean if lean is not None else super().decode_step(model, cache, rows)

    def head_logprobs(self, head: nn.Module, chunk: int) -> HeadLogProbs:
        if type(head) is not nn.Linear:  # e.g. a head with adapters: autograd through it
            return super().head_logprobs(head, chunk)
        linear: nn.Linear = head
        packed = pack_head(linear, chunk)  # the weight does not change while a scoring pass lives
        return lambda hidden, targets, temperature, with_entropy: chunked_selected_logprobs(
            hidden, linear.weight, linear.bias, targets, temperature, with_entropy, chunk, packed
        )
