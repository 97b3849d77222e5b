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

from workers.engine.kernels.packed_linear import FrozenLinear


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    """The dtype nn.Linear would compute in here: the autocast dtype when autocast is on."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return hidden.dtype


class _Head:
    """The head's matmul for one chunk at a time, into one reused buffer: a fresh (tokens x vocabulary)
    tensor per chunk and per element-wise step would be allocated (and page-faulted) again and again.
    With a packed weight (oneDNN allocates its output), the element-wise steps still run in place."""

    def __init__(
        self,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        chunk: int,
        packed: FrozenLinear | None,
    ):
        self.dtype = _compute_dtype(hidden)
        self.weight = weight.to(self.dtype)
        self.bias = None if bias is None else bias.to(self.dtype)
        # The same weight pre-packed (packed_linear.py), used where the head computes in float32
        self.packed = packed if self.dtype == torch.float32 else None
        rows = min(chunk, hidden.size(0))
        self.buffer = (
            torch.empty(rows, weight.size(0), dtype=self.dtype, device=hidden.device) if self.packed is None else None
        )

    def logits(self, hidden: torch.Tensor, temperature: float) -> torch.Tensor:
        """(t, H) -> (t, V) float32 logits / temperature (from the packed weight, else in the reused buffer
        when computing in float32)."""
        if self.packed is not None:
            out = self.packed(hidden)
        else:
            assert self.buffer is not None  # allocated whenever there is no packed weight
            buffer = self.buffer[: hidden.size(0)]
            if self.bias is None:
                out = torch.mm(hidden.to(self.dtype), self.weight.t(), out=buffer)
            else:
                out = torch.addmm(self.bias, hidden.to(self.dtype), self.weight.t(), out=buffer)
        out = out.float()
        if temperature != 1.0:  # x / 1.0 is x: skip a pass over the logits
            out.div_(temperature)
        return out


class _SelectedLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,  # (T, H)
        weight: torch.Tensor,  # (V, H)
        bias: torch.Tensor | None,  # (V,)
        targets: torch.Tensor,  # (T,)
        temperature: float,
        with_entropy: bool,
        chunk: int,
        packed: FrozenLinear | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        head = _Head(hidden, weight, bias, chunk, packed)
        total = hidden.size(0)
        logp = torch.empty(total, dtype=torch.float32, device=hidden.device)
        normaliser = torch.empty_like(logp)
        entropy = torch.empty_like(logp) if with_entropy else logp.new_empty(0)
        probs = None
        for start in range(0, total, chunk):
            part = slice(start, start + chunk)
            logits = head.logits(hidden[part], temperature)  # (t, V)
            # logsumexp by hand, keeping exp(logits - max): it gives the entropy and, normalised, the
            # softmax the backward needs, without another pass of exp over the logits.
            top = logits.amax(dim=-1, keepdim=True)
            probs = torch.sub(logits, top).exp_()  # (t, V), unnormalised
            mass = probs.sum(dim=-1, keepdim=True)  # (t, 1)
            normaliser[part] = (top + mass.log()).squeeze(1)
            logp[part] = logits.gather(1, targets[part, None]).squeeze(1) - normaliser[part]
            if with_entropy:  # H = logsumexp - sum(p * logits), the sum as a batched dot product
                dot = torch.bmm(probs.unsqueeze(1), logits.unsqueeze(2)).view(-1, 1)
                entropy[part] = normaliser[part] - (dot / mass).squeeze(1)
            probs.div_(mass)  # softmax
        ctx.save_for_backward(hidden, weight, bias, targets, normaliser)
        ctx.temperature, ctx.chunk, ctx.packed = temperature, chunk, packed
        # One chunk only (a small batch): keep its softmax, the backward then needs no recomputation.
        ctx.kept = probs if total <= chunk else None
        ctx.mark_non_differentiable(entropy)
        ctx.set_materialize_grads(False)
        return logp, entropy

    @staticmethod
    def backward(ctx: Any, grad_logp: torch.Tensor | None, _grad_entropy: Any) -> tuple[Any, ...]:
        hidden, weight, bias, targets, normaliser = ctx.saved_tensors
        if grad_logp is None:
            return None, None, None, None, None, None, None, None
        chunk, temperature = ctx.chunk, ctx.temperature
        head = _Head(hidden, weight, bias, chunk, ctx.packed)
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        # float32 accumulator across chunks (each chunk's product in the compute dtype, as autograd does)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_weight else None
        grad_bias = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_bias else None
        for start in range(0, hidden.size(0), chunk):
            part = slice(start, start + chunk)
            g = grad_logp[part, None]  # (t, 1)
            # d(chosen - logsumexp) / d logits = onehot(target) - softmax, times the incoming gradient;
            # computed in place in the logits' buffer.
            if ctx.kept is not None:
                grad_logits, ctx.kept = ctx.kept.mul_(-g), None
            else:
                logits = head.logits(hidden[part], temperature)
                grad_logits = logits.sub_(normaliser[part, None]).exp_().mul_(-g)
            grad_logits.scatter_add_(1, targets[part, None], g)
            if temperature != 1.0:
                grad_logits.div_(temperature)  # through logits / temperature
            grad_logits = grad_logits.to(head.dtype)  # through the float32 upcast
            h = hidden[part].to(head.dtype)
            if grad_hidden is not None:
                grad_hidden[part] = (grad_logits @ head.weight).to(hidden.dtype)
            if grad_weight is not None and head.dtype == torch.float32:
                grad_weight.addmm_(grad_logits.t(), h)  # in place: no (V, H) temporary
            elif grad_weight is not None:
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
    packed: FrozenLinear | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(T, H) hidden, (V, H) head weight, (T,) targets -> (T,) log p(target) under softmax(logits /
    temperature), differentiable in hidden, weight and bias; and (T,) entropies (no grad) if asked.
    `packed`: the same weight and bias as a FrozenLinear, for computing the logits (forward and their
    recomputation in backward); the weight must not change until the backward has run."""
    logp, entropy = _SelectedLogProbs.apply(  # type: ignore[no-untyped-call]
        hidden, weight, bias, targets, temperature, with_entropy, chunk, packed
    )
    return logp, entropy if with_entropy else None
