"""A KV cache for rollouts whose buffers are allocated once, for the whole rollout.

transformers' DynamicLayer appends a decode step's keys and values with torch.cat, which copies the
whole cache at every step (quadratic in the completion length). Here each layer's keys and values live
in buffers with room for the prompt and every new token; an append writes in place and attention reads
a view of the filled part. Dropping finished rows copies the live rows once (as DynamicLayer does).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedConfig
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):  # type: ignore[no-untyped-call]  # (transformers: untyped __init_subclass__)
    """A DynamicLayer (same masks, same semantics) whose storage holds `capacity` positions."""

    def __init__(self, capacity: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        rows, heads, _, key_dim = key_states.shape
        self.key_buffer = key_states.new_empty(rows, heads, self.capacity, key_dim)
        self.value_buffer = value_states.new_empty(rows, heads, self.capacity, value_states.size(-1))
        self.device = key_states.device
        self.is_initialized = True

    def _expose(self) -> tuple[torch.Tensor, torch.Tensor]:
        keys = self.key_buffer[:, :, : self.length]  # (R, heads, length, dim), a view
        values = self.value_buffer[:, :, : self.length]
        self.keys, self.values = keys, values
        return keys, values

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.size(-2)
        if self.length + new > self.capacity:
            raise RuntimeError(f"KV cache capacity {self.capacity} exceeded")
        self.key_buffer[:, :, self.length : self.length + new] = key_states
        self.value_buffer[:, :, self.length : self.length + new] = value_states
        self.length += new
        return self._expose()

    def get_seq_length(self) -> int:
        return self.length

    def _reindex(self, rows: torch.Tensor) -> None:
        """Keep batch rows `rows` (indices may repeat), copying only the filled positions."""
        for name in ("key_buffer", "value_buffer"):
            old = getattr(self, name)
            new = old.new_empty(rows.numel(), *old.shape[1:])
            new[:, :, : self.length] = old[:, :, : self.length].index_select(0, rows)
            setattr(self, name, new)
        self._expose()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.length > 0:
            self._reindex(torch.arange(self.key_buffer.size(0), device=self.device).repeat_interleave(repeats))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.length > 0:
            self._reindex(indices)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx)

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("a rollout cache only grows")


def rollout_cache(model: nn.Module, capacity: int) -> DynamicCache:
    """A cache for `capacity` positions per row: preallocated layers where the model's cache would be
    plain DynamicLayers (full attention everywhere), else the model's own DynamicCache."""
    cache = DynamicCache(config=cast(PreTrainedConfig, model.config))
    if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
        cache.layers = [PreallocatedLayer(capacity) for _ in cache.layers]
    return cache
