"""Per-token log-probs of completions: the same values as one full forward of each row's prompt +
completion, computed on little more than the tokens that matter.

- Each distinct prompt runs once (a GRPO group's G rows share it); its K/V cache is handed to the rows
  that continue it, and gradients flow back into the prompt through that cache.
- Completions run in length buckets, each trimmed to its own longest row, so padding is mostly skipped.
- The LM head runs only on scored positions (completion tokens that are not padding), in chunks, and
  keeps no logits for backward: log p(token) = logit[token] - logsumexp, and the backward recomputes
  each chunk's logits (one more head matmul instead of batch x length x vocabulary floats held).
Models whose cache is not a plain DynamicCache (sliding windows, ...) or that run with gradient
checkpointing (which turns the cache off in training) take the plain path: one forward per row.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from workers.engine.lm_head import chunked_selected_logprobs

CHUNK_TOKENS = 512  # rows of the LM head computed at once; bounds the head's memory at 512 x vocab floats
# A completion bucket costs a forward (and backward) call of its own: worth about this many padded
# tokens of compute on CPU for a small model; on a GPU a call costs far more than a token.
BUCKET_OVERHEAD_TOKENS = {"cpu": 64, "cuda": 1024}


def unwrap(model: nn.Module) -> nn.Module:
    """The transformers CausalLM inside a peft wrapper (adapters stay active), or the model itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def cache_keyword(module: nn.Module) -> str:
    """transformers 5.2x renamed the forward's `past_key_values` argument to `cache`; accept both."""
    forward = unwrap(module).forward
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def selective_log_softmax(
    hidden: torch.Tensor, head: nn.Module, targets: torch.Tensor, temperature: float, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(T, H) hidden states, (T,) target ids -> (T,) log p(target), and (T,) entropies (no grad) if asked.

    Logits are computed CHUNK_TOKENS rows at a time and upcast to float32 per chunk only. A plain
    nn.Linear head goes through lm_head.chunked_selected_logprobs (no logits kept for backward); any
    other head (e.g. one with adapters) through autograd, which keeps each chunk's logits.
    """
    if type(head) is nn.Linear:
        return chunked_selected_logprobs(
            hidden, head.weight, head.bias, targets, temperature, with_entropy, CHUNK_TOKENS
        )
    logps, entropies = [], []
    for start in range(0, hidden.size(0), CHUNK_TOKENS):
        logits = head(hidden[start : start + CHUNK_TOKENS]).float() / temperature  # (t, V)
        normaliser = torch.logsumexp(logits, dim=-1)  # (t,)
        chosen = logits.gather(1, targets[start : start + CHUNK_TOKENS, None]).squeeze(1)  # (t,)
        logps.append(chosen - normaliser)
        if with_entropy:
            with torch.no_grad():
                probs = torch.softmax(logits, dim=-1)
                entropies.append(normaliser - (probs * logits).sum(dim=-1))
    empty = hidden.new_zeros(0, dtype=torch.float32)
    logp = torch.cat(logps) if logps else empty
    entropy = (torch.cat(entropies) if entropies else empty) if with_entropy else None
    return logp, entropy


def length_buckets(lengths: list[int], overhead: int) -> list[list[int]]:
    """Split rows into buckets minimising padded tokens + `overhead` per bucket. Each bucket is a run of
    rows in length order, so an optimal split is found exactly by dynamic programming over that order."""
    order = sorted(range(len(lengths)), key=lambda row: (-lengths[row], row))  # longest first, stable
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[i]: cost of the first i rows of `order`
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(end):
            cost = best[start] + overhead + (end - start) * lengths[order[start]]  # padded to the longest
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
    hidden = decoder(input_ids=input_ids, attention_mask=attention, position_ids=positions).last_hidden_state
    return hidden[:, prompt_ids.size(1) - 1 : -1]  # position i predicts token i + 1


def _prompt_cache(
    decoder: nn.Module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, DynamicCache] | None:
    """Run each distinct prompt once: (inverse (B,) row -> distinct prompt, its mask (U, Lp), its last
    hidden state (U, H), its cache), or None when the model's cache is not plain DynamicLayers."""
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
    return inverse, mask, out.last_hidden_state[:, -1], cache  # left padding: the last column is real


def _bucket_hidden(
    decoder: nn.Module,
    prompts: tuple[torch.Tensor, torch.Tensor, torch.Tensor, DynamicCache],
    rows: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
) -> torch.Tensor:
    """(n, w, H) hidden states predicting completion tokens 0..w-1 of `rows`, w = their longest length:
    token 0 comes from the prompt's last position, token j from completion token j - 1."""
    inverse, mask, last, cache = prompts
    owner = inverse[rows]  # (n,) the distinct prompt of each row
    width = max(int(completion_mask[rows].sum(dim=1).max()), 1)
    first = last[owner][:, None]  # (n, 1, H)
    if width == 1:
        return first
    rows_cache = DynamicCache(ddp_cache_data=[(layer.keys[owner], layer.values[owner]) for layer in cache.layers])
    prompt_mask = mask[owner]
    attention = torch.cat([prompt_mask, completion_mask[rows, : width - 1]], dim=1)
    positions = prompt_mask.sum(dim=1, keepdim=True) + torch.arange(width - 1, device=rows.device)
    out = decoder(
        input_ids=completion_ids[rows, : width - 1],
        attention_mask=attention,
        position_ids=positions,
        use_cache=True,
        **{cache_keyword(decoder): rows_cache},
    ).last_hidden_state  # (n, w - 1, H)
    return torch.cat([first, out], dim=1)


def completion_logprobs(
    model: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    temperature: float,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, Lp) left-padded prompts + (B, C) right-padded completions -> (B, C) log-probs of each
    completion token under softmax(logits / temperature) (0 where completion_mask is 0), and (B, C)
    entropies when asked. Positions count real tokens only, as during rollout."""
    base = unwrap(model)
    # peft injects its adapters into the base model's layers, so the bare decoder runs them too.
    decoder = base.get_decoder()
    B, C = completion_ids.shape
    prompts = _prompt_cache(decoder, prompt_ids, prompt_mask) if _shares_prompts(decoder) else None
    if prompts is None:
        hidden = _full_forward_hidden(decoder, prompt_ids, prompt_mask, completion_ids, completion_mask)
        parts = [(torch.arange(B, device=completion_ids.device), hidden)]
    else:
        device = completion_ids.device.type
        overhead = BUCKET_OVERHEAD_TOKENS[device if device in BUCKET_OVERHEAD_TOKENS else "cuda"]
        lengths = completion_mask.sum(dim=1).tolist()
        parts = []
        for bucket in length_buckets(lengths, overhead):
            rows = torch.tensor(bucket, device=completion_ids.device)
            parts.append((rows, _bucket_hidden(decoder, prompts, rows, completion_ids, completion_mask)))
    # Scored positions of every part, as flat indices into (B, C).
    selected, targets, flat = [], [], []
    for rows, hidden in parts:
        width = hidden.size(1)
        scored = completion_mask[rows, :width].bool()  # (n, w)
        selected.append(hidden[scored])
        targets.append(completion_ids[rows, :width][scored])
        flat.append((rows[:, None] * C + torch.arange(width, device=rows.device))[scored])
    logp, entropy = selective_log_softmax(
        torch.cat(selected), base.get_output_embeddings(), torch.cat(targets), temperature, with_entropy
    )
    index = torch.cat(flat)
    zeros = torch.zeros(B * C, dtype=torch.float32, device=completion_ids.device)
    logps = zeros.scatter(0, index, logp).view(B, C)
    if entropy is not None:
        entropy = zeros.scatter(0, index, entropy).view(B, C)
    return logps, entropy
