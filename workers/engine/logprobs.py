"""Per-token log-probs of completions, without a full-vocabulary float32 log-softmax.

The backbone runs over prompt + completion, but the LM head runs only where a log-prob is needed
(completion tokens that are not padding), in chunks of rows: log p(token) = logit[token] - logsumexp.
Peak memory for the head is chunk_tokens x vocabulary instead of batch x length x vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn

CHUNK_TOKENS = 512  # rows of the LM head computed at once; bounds the head's memory at 512 x vocab floats


def unwrap(model: nn.Module) -> nn.Module:
    """The transformers CausalLM inside a peft wrapper (adapters stay active), or the model itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def selective_log_softmax(
    hidden: torch.Tensor, head: nn.Module, targets: torch.Tensor, temperature: float, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(T, H) hidden states, (T,) target ids -> (T,) log p(target), and (T,) entropies (no grad) if asked.

    Logits are computed CHUNK_TOKENS rows at a time and upcast to float32 per chunk only.
    """
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
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)  # (B, Lp + C)
    attention = torch.cat([prompt_mask, completion_mask], dim=1)  # (B, Lp + C)
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    # peft injects its adapters into the base model's layers, so the bare decoder runs them too.
    hidden = base.get_decoder()(
        input_ids=input_ids, attention_mask=attention, position_ids=positions
    ).last_hidden_state
    prompt_width = prompt_ids.size(1)
    # The hidden state at position i predicts token i + 1: completion token j comes from Lp - 1 + j.
    hidden = hidden[:, prompt_width - 1 : -1]  # (B, C, H)
    scored = completion_mask.bool()
    logp_flat, entropy_flat = selective_log_softmax(
        hidden[scored], base.get_output_embeddings(), completion_ids[scored], temperature, with_entropy
    )
    logps = hidden.new_zeros(completion_ids.shape, dtype=torch.float32).masked_scatter(scored, logp_flat)
    entropy = None
    if entropy_flat is not None:
        entropy = torch.zeros_like(logps).masked_scatter(scored, entropy_flat)
    return logps, entropy
