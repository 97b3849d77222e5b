"""FrozenLinear: the oneDNN-packed matmul equals F.linear (to float32 rounding), and so does its fallback."""

import pytest
import torch
import torch.nn.functional as F

from workers.engine.kernels import packed_linear
from workers.engine.kernels.packed_linear import FrozenLinear, onednn_packing_available


def test_this_cpu_build_packs():
    # The speed of decoding relies on it here (bench/README.md); a torch without oneDNN would still be right.
    assert onednn_packing_available(torch.zeros(2, 2))
    assert not onednn_packing_available(torch.zeros(2, 2, dtype=torch.bfloat16))


@pytest.mark.parametrize("row_multiple", [1, 8, 64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("rows", [1, 3, 17, 64, 65, 300])
def test_packed_product_equals_linear(bias, rows, row_multiple):
    generator = torch.Generator().manual_seed(rows)
    weight = torch.randn(96, 40, generator=generator)
    b = torch.randn(96, generator=generator) if bias else None
    layer = FrozenLinear(weight, b, rows=64, row_multiple=row_multiple)
    assert layer.packed is not None
    x = torch.randn(rows, 40, generator=generator)
    y = layer(x)
    assert y.shape == (rows, 96) and y.is_contiguous()
    torch.testing.assert_close(y, F.linear(x, weight, b), rtol=1e-5, atol=1e-5)
    # a non-contiguous input (a column slice) multiplies the same
    wide = torch.randn(rows, 80, generator=generator)
    torch.testing.assert_close(layer(wide[:, ::2]), F.linear(wide[:, ::2], weight, b), rtol=1e-5, atol=1e-5)


def test_falls_back_to_linear_without_onednn(monkeypatch):
    weight, x = torch.randn(8, 4), torch.randn(5, 4)
    monkeypatch.setattr(packed_linear, "onednn_packing_available", lambda _: False)
    plain = FrozenLinear(weight, None, rows=5, row_multiple=8)
    assert plain.packed is None
    torch.testing.assert_close(plain(x), F.linear(x, weight), rtol=1e-6, atol=1e-6)
    bias = torch.randn(8)
    torch.testing.assert_close(
        FrozenLinear(weight, bias, rows=5, row_multiple=8)(x), F.linear(x, weight, bias), rtol=1e-6, atol=1e-6
    )
    monkeypatch.undo()
    packed = FrozenLinear(weight, None, rows=5, row_multiple=8)
    assert packed.packed is not None
    assert torch.equal(packed(torch.zeros(0, 4)), torch.zeros(0, 8))  # no rows: oneDNN is not asked


def test_a_model_weight_can_be_packed_while_it_requires_grad():
    linear = torch.nn.Linear(4, 8)
    layer = FrozenLinear(linear.weight, linear.bias, rows=2, row_multiple=8)
    x = torch.randn(2, 4)
    y = layer(x)
    assert not y.requires_grad
    torch.testing.assert_close(y, linear(x).detach(), rtol=1e-5, atol=1e-5)
