"""Linear maps with the weight pre-packed for oneDNN: the no-grad fp32 CPU matmuls of decoding and
of the LM head.

A CPU matmul with few rows (a decode step has 1-64) runs far below the machine's matmul rate: the
GEMM re-lays-out (packs) the weight on every call, which costs about as much as the product itself
when there are few rows. oneDNN can lay the weight out once, in the blocked format its
kernel reads, and then multiply straight from it: the bench model's LM head (256 x 8192) runs 1.6-2.2x
faster for 16-64 rows and ~1.25x for 512 (2-core CPU, `python -m bench.packed_matmul`). The product
is the same matmul with another summation order (float32 rounding, ~1e-6 relative), not bitwise
that of torch.mm.

Packing copies the weight, so a FrozenLinear holds for as long as the weight does not change (one
rollout, one scoring pass). With no oneDNN (or off CPU / float32) it multiplies by the weight
transposed once: for a few rows, (R, in) @ (in, out) runs 10-50% faster than against (out, in)^T.

oneDNN keeps state for every distinct row count it has multiplied: a rollout's decode steps with
every row count from 64 down grew the bench process by ~110 MB, the scorer's chunks (any count up to
512) by ~100 MB over 8 steps. So row counts are rounded up to a multiple of `row_multiple` (zero
rows, dropped from the result), which keeps that state to a few shapes; the growth stopped.
"""

from __future__ import annotations

import torch


def onednn_packing_available(weight: torch.Tensor) -> bool:
    mkldnn = torch.ops.mkldnn
    return (
        weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
        and hasattr(mkldnn, "_reorder_linear_weight")
        and hasattr(mkldnn, "_linear_pointwise")
    )


class FrozenLinear:
    """x (T, in) -> x @ weight.T + bias (T, out), without gradients, for a weight that stays as it is
    while this object is used. `rows` is the typical T, which oneDNN picks its layout for; T is padded
    to a multiple of `row_multiple` (see the module docstring)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, rows: int, row_multiple: int) -> None:
        self.row_multiple = row_multiple
        weight = weight.detach()
        self.bias = None if bias is None else bias.detach().contiguous()
        self.packed: torch.Tensor | None = None
        self.transposed: torch.Tensor | None = None
        if onednn_packing_available(weight):
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), max(rows, 1))
        else:
            self.transposed = weight.t().contiguous()  # (in, out)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is None:
            assert self.transposed is not None  # one of the two is set in __init__
            y = x @ self.transposed
            return y if self.bias is None else y + self.bias
        rows = x.size(0)
        if rows == 0:
            return x.new_zeros(0, self.packed.size(0))
        padded = -(-rows // self.row_multiple) * self.row_multiple
        if padded != rows:
            x = torch.cat([x, x.new_zeros(padded - rows, x.size(1))])
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(x.contiguous(), self.packed, self.bias, "none", [], "")
        return out[:rows]
