"""The LM head's log-prob of chosen tokens, in chunks, without keeping logits for backward.

Autograd through `logsumexp(head(h))` keeps every chunk's (tokens x vocabulary) float32 logits until
backward: 60 MB for 2k tokens at vocabulary 8k, 2 GB at 150k. This function keeps only the inputs
and the per-token logsumexp and recomputes each chunk's logits in backward. The arithmetic is the
one autograd does: d logp / d logits = onehot(target) - softmax(logits), divided by the temperature,
then the two matmuls of a linear layer's backward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    """The dtype nn.Linear would compute in here: the autocast dtype when autocast is on."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return hidden.dtype


def _chunk_logits(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, temperature: float
) -> torch.Tensor:
    return F.linear(hidden, weight, bias).float() / temperature  # (t, V)


class _SelectedLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,  # (T, H)
        weight: torch.Tensor,  # (V, H)
        bias: torch.Tensor | None,  # (V,)
        targets: torch.Tensor,  # (T,)
        temperature: float,
        with_entropy: bool,
        chunk: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = _compute_dtype(hidden)
        w, b = weight.to(dtype), None if bias is None else bias.to(dtype)
        logps, normalisers, entropies = [], [], []
        for start in range(0, hidden.size(0), chunk):
            logits = _chunk_logits(hidden[start : start + chunk].to(dtype), w, b, temperature)
            normaliser = torch.logsumexp(logits, dim=-1)  # (t,)
            chosen = logits.gather(1, targets[start : start + chunk, None]).squeeze(1)
            logps.append(chosen - normaliser)
            normalisers.append(normaliser)
            if with_entropy:
                entropies.append(normaliser - (torch.softmax(logits, dim=-1) * logits).sum(dim=-1))
        empty = hidden.new_zeros(0, dtype=torch.float32)
        logp = torch.cat(logps) if logps else empty
        entropy = torch.cat(entropies) if entropies else empty
        ctx.save_for_backward(hidden, weight, bias, targets, torch.cat(normalisers) if normalisers else empty)
        ctx.temperature, ctx.chunk, ctx.dtype = temperature, chunk, dtype
        ctx.mark_non_differentiable(entropy)
        ctx.set_materialize_grads(False)
        return logp, entropy

    @staticmethod
    def backward(ctx: Any, grad_logp: torch.Tensor | None, _grad_entropy: Any) -> tuple[Any, ...]:
        hidden, weight, bias, targets, normaliser = ctx.saved_tensors
        if grad_logp is None:
            return None, None, None, None, None, None, None
        dtype, chunk, temperature = ctx.dtype, ctx.chunk, ctx.temperature
        w, b = weight.to(dtype), None if bias is None else bias.to(dtype)
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_weight else None
        grad_bias = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_bias else None
        for start in range(0, hidden.size(0), chunk):
            h = hidden[start : start + chunk].to(dtype)
            g = grad_logp[start : start + chunk, None]  # (t, 1)
            logits = _chunk_logits(h, w, b, temperature)
            # d(chosen - logsumexp) / d logits = onehot(target) - softmax, times the incoming gradient.
            grad_logits = (-g) * torch.exp(logits - normaliser[start : start + chunk, None])
            grad_logits.scatter_add_(1, targets[start : start + chunk, None], g)
            grad_logits = (grad_logits / temperature).to(dtype)  # (t, V), through the division and upcast
            if grad_hidden is not None:
                grad_hidden[start : start + chunk] = (grad_logits @ w).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight += grad_logits.t() @ h
            if grad_bias is not None:
                grad_bias += grad_logits.sum(dim=0)
        return (
            grad_hidden,
            None if grad_weight is None else grad_weight.to(weight.dtype),
            None if grad_bias is None else grad_bias.to(bias.dtype),
            None,
            None,
            None,
            None,
        )


def chunked_selected_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    temperature: float,
    with_entropy: bool,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(T, H) hidden, (V, H) head weight, (T,) targets -> (T,) log p(target) under softmax(logits /
    temperature), differentiable in hidden, weight and bias; and (T,) entropies (no grad) if asked."""
    logp, entropy = _SelectedLogProbs.apply(hidden, weight, bias, targets, temperature, with_entropy, chunk)
    return logp, entropy if with_entropy else None
