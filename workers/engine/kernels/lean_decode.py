"""A lean decode step for Llama and Qwen2 decoders: one token per row, the same arithmetic as the
transformers forward, without its per-call machinery.

A decode step of a small model is mostly fixed cost: the transformers forward (mask building,
decorators, output objects, seven projections per layer) takes ~8 ms on CPU for a single row of the
5M-parameter bench model, against ~14 ms for 64 rows. This step runs the same operations on the
module's own weights, with q/k/v and gate/up each fused into one matmul whose weight is packed once
per rollout for oneDNN (packed_linear.py), writing keys and values into the rollout's preallocated
cache (kv_cache.py). It is used only where it reproduces the model
exactly: Llama / Qwen2 layers with full attention, SiLU MLPs, plain nn.Linear projections (no
adapters), an sdpa or eager attention, and no autocast (the bf16 path keeps transformers' forward,
whose dtype flow under autocast this step does not mirror). Anything else decodes with model(...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

from workers.engine.backend import DecodeStep
from workers.engine.kernels.kv_cache import PreallocatedLayer
from workers.engine.kernels.packed_linear import FrozenLinear

_FAMILIES = {"llama": "Llama", "qwen2": "Qwen2"}  # model_type -> class name prefix


def _rms_norm(hidden: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """As LlamaRMSNorm / Qwen2RMSNorm (float32 statistics, weight applied in the input dtype)."""
    dtype = hidden.dtype
    hidden = hidden.to(torch.float32)
    hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + eps)
    return weight * hidden.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@dataclass
class _Layer:
    input_norm: Any  # a {Llama,Qwen2}RMSNorm: .weight and .variance_epsilon
    post_norm: Any
    qkv: FrozenLinear  # H -> q + k + v: q_proj, k_proj, v_proj stacked
    o_proj: FrozenLinear
    gate_up: FrozenLinear  # H -> 2 I: gate_proj, up_proj stacked
    down_proj: FrozenLinear


# Decode batches are padded to a multiple of this many rows for the packed matmuls (packed_linear.py):
# oneDNN then keeps state for R / 8 shapes instead of R.
ROW_MULTIPLE = 8


def _frozen(linears: list[nn.Linear], rows: int) -> FrozenLinear:
    """One matmul for the projections `linears` of the same input, their weights stacked (a single
    projection's weight is used as it is: FrozenLinear copies it anyway)."""
    if len(linears) == 1:
        return FrozenLinear(linears[0].weight, linears[0].bias, rows, ROW_MULTIPLE)
    weight = torch.cat([linear.weight for linear in linears])
    bias = None if linears[0].bias is None else torch.cat([linear.bias for linear in linears])
    return FrozenLinear(weight, bias, rows, ROW_MULTIPLE)


def _supported(model: nn.Module) -> bool:
    config = model.config
    prefix = _FAMILIES.get(getattr(config, "model_type", ""))
    decoder = getattr(model, "model", None)
    if prefix is None or decoder is None or hasattr(model, "get_base_model"):  # peft: adapters in the layers
        return False
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    plain = (
        getattr(config, "hidden_act", None) == "silu"
        and getattr(config, "_attn_implementation", None) in ("sdpa", "eager")
        and all(kind == "full_attention" for kind in layer_types)
        and type(model.lm_head) is nn.Linear
        and type(decoder.norm).__name__ == f"{prefix}RMSNorm"
    )
    if not plain:
        return False
    for layer in decoder.layers:
        attention, mlp = layer.self_attn, layer.mlp
        projections = [attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj]
        projections += [mlp.gate_proj, mlp.up_proj, mlp.down_proj]
        if (
            type(attention).__name__ != f"{prefix}Attention"
            or type(mlp).__name__ != f"{prefix}MLP"
            or type(layer.input_layernorm).__name__ != f"{prefix}RMSNorm"
            or any(type(p) is not nn.Linear for p in projections)
        ):
            return False
    return True


class LeanDecodeStep:
    """(R,) tokens, (R,) positions, (R, L) attention mask over the cache + this token, the cache ->
    (R, V) next-token logits, appending this token's keys and values to the cache."""

    def __init__(self, model: nn.Module, rows: int) -> None:
        # transformers' modules are typed as nn.Module (attributes: Tensor | Module); this reads them by
        # the Llama / Qwen2 layout that _supported() checked.
        decoder: Any = model.model
        config: Any = model.config
        self.embed, self.rotary, self.norm = decoder.embed_tokens, decoder.rotary_emb, decoder.norm
        # The head and every projection with its weight packed once per rollout, where oneDNN is there
        # (packed_linear.py; the head, the largest matmul here, runs 1.6-2.2x faster for 16-64 rows).
        lm_head: Any = model.lm_head
        self.head = _frozen([lm_head], rows)
        first = decoder.layers[0].self_attn
        self.head_dim: int = first.head_dim
        self.scaling: float = first.scaling
        self.heads: int = config.num_attention_heads
        self.kv_heads: int = config.num_key_value_heads
        self.layers: list[_Layer] = []
        for layer in decoder.layers:
            attention, mlp = layer.self_attn, layer.mlp
            self.layers.append(
                _Layer(
                    layer.input_layernorm, layer.post_attention_layernorm,
                    qkv=_frozen([attention.q_proj, attention.k_proj, attention.v_proj], rows),
                    o_proj=_frozen([attention.o_proj], rows),
                    gate_up=_frozen([mlp.gate_proj, mlp.up_proj], rows),
                    down_proj=_frozen([mlp.down_proj], rows),
                )
            )  # fmt: skip

    def __call__(
        self, tokens: torch.Tensor, positions: torch.Tensor, attention: torch.Tensor, cache: DynamicCache
    ) -> torch.Tensor:
        rows, hd = tokens.numel(), self.head_dim
        hidden = self.embed(tokens)  # (R, H)
        cos, sin = self.rotary(hidden[:, None], positions[:, None])  # (R, 1, hd) each
        cos, sin = cos[:, None], sin[:, None]  # (R, 1, 1, hd): broadcast over heads
        # (R, 1, 1, L) additive mask: 0 where a key is attended, -inf on padding
        mask = torch.zeros(attention.shape, dtype=hidden.dtype, device=hidden.device)
        mask = mask.masked_fill_(attention == 0, float("-inf"))[:, None, None, :]
        sizes = [self.heads * hd, self.kv_heads * hd, self.kv_heads * hd]
        layer_caches: list[Any] = list(cache.layers)  # PreallocatedLayers (checked by lean_decode_step)
        for layer, layer_cache in zip(self.layers, layer_caches, strict=True):
            x = _rms_norm(hidden, layer.input_norm.weight, layer.input_norm.variance_epsilon)
            q, k, v = torch.split(layer.qkv(x), sizes, dim=-1)
            q = q.view(rows, self.heads, 1, hd)
            k, v = k.view(rows, self.kv_heads, 1, hd), v.view(rows, self.kv_heads, 1, hd)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            keys, values = layer_cache.update(k, v)  # (R, kv heads, L, hd)
            # One query per row: the query heads of a KV head share its keys (grouped-query attention).
            q = q.view(rows, self.kv_heads, self.heads // self.kv_heads, hd)
            # Attention written out as transformers' eager path computes it: for a single query, two
            # small batched matmuls beat SDPA's flash kernel on CPU (its blocking is built for long queries).
            scores = torch.matmul(q, keys.transpose(-1, -2)).mul_(self.scaling).add_(mask)  # (R, kv, rep, L)
            out = torch.matmul(torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype), values)
            hidden = hidden + layer.o_proj(out.reshape(rows, self.heads * hd))
            x = _rms_norm(hidden, layer.post_norm.weight, layer.post_norm.variance_epsilon)
            gate, up = layer.gate_up(x).chunk(2, dim=-1)
            hidden = hidden + layer.down_proj(F.silu(gate) * up)
        hidden = _rms_norm(hidden, self.norm.weight, self.norm.variance_epsilon)
        return self.head(hidden)


def lean_decode_step(model: nn.Module, cache: DynamicCache, rows: int) -> DecodeStep | None:
    """The lean step for `model` decoding `rows` rows into `cache`, or None where it would not be exact."""
    device = next(model.parameters()).device
    if torch.is_autocast_enabled(device.type) or not _supported(model):
        return None
    layers, decoder = cache.layers, cast(Any, model.model)
    if len(layers) != len(decoder.layers) or not all(type(layer) is PreallocatedLayer for layer in layers):
        return None
    return LeanDecodeStep(model, rows)
