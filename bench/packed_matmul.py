"""The LM head's matmul, plain against oneDNN-packed (workers/engine/kernels/packed_linear.py), in one run.

The head (hidden -> vocabulary) is the largest matmul of a decode step and of the scoring/training
forwards. For each row count this times what the engine did before (torch.mm against the weight
transposed once, as the decode step did; F.linear, as the scorer's chunks did) and FrozenLinear's
packed product, and prints the ratios; plus the one-off cost of packing.

    .venv/bin/python -m bench.packed_matmul                      # the reference workload's head, 256 -> 8192
    .venv/bin/python -m bench.packed_matmul --hidden 896 --vocab 32768
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from workers.engine.kernels.packed_linear import FrozenLinear, onednn_packing_available


def _time_ms(fn: Callable[[], torch.Tensor], budget_s: float = 0.3) -> float:
    """Median milliseconds of fn() over about budget_s of calls, after a warm-up."""
    for _ in range(3):
        fn()
    times = []
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline or len(times) < 5:
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--rows", default="1,4,16,32,64,128,512", help="comma-separated row counts")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(args.vocab, args.hidden, generator=generator) / args.hidden**0.5
    if not onednn_packing_available(weight):
        raise SystemExit("this torch build has no oneDNN on this device: FrozenLinear is the plain matmul here")
    transposed = weight.t().contiguous()
    started = time.perf_counter()
    FrozenLinear(weight, None, rows=64, row_multiple=1)
    print(f"head {args.hidden} -> {args.vocab}, fp32, {torch.get_num_threads()} threads")
    print(f"packing the weight once: {1e3 * (time.perf_counter() - started):.1f} ms")
    print(f"{'rows':>6} {'mm (W^T once)':>14} {'F.linear':>10} {'packed':>8} {'mm/packed':>10} {'linear/packed':>14}")
    for rows in [int(r) for r in args.rows.split(",")]:
        x = torch.randn(rows, args.hidden, generator=generator)
        packed = FrozenLinear(weight, None, rows=rows, row_multiple=1)
        mm = _time_ms(lambda x=x: x @ transposed)
        linear = _time_ms(lambda x=x: F.linear(x, weight))
        ours = _time_ms(lambda x=x, packed=packed: packed(x))
        print(f"{rows:>6} {mm:>12.3f}ms {linear:>8.3f}ms {ours:>6.3f}ms {mm / ours:>10.2f} {linear / ours:>14.2f}")


if __name__ == "__main__":
    main()
