"""Sandbox cost, measured against in-process peers in the same run (needs root for the namespaces).

    PYTHONPATH=. python -m workers.rewards.bench [--repeats 20]

Prints medians: pool start, one call's round trip, a step of 64 completions with a trivial python
reward (1 and N workers) next to the same check done inline, and math_equivalence sandboxed next to
calling its scoring function in this process. Timings are noisy on a shared machine; rerun.
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from pydantic import TypeAdapter

from app.schemas.reward import RewardSpec
from workers.rewards.programs import math_equivalence
from workers.rewards.sandbox import Program, SandboxPool, SandboxSettings
from workers.rewards.scorer import build_reward_fn

TRIVIAL = "def reward(prompt, completion, row):\n    return float(completion == row['answer'])\n"
SPECS = TypeAdapter(list[RewardSpec])


def report(line: str) -> None:
    sys.stdout.write(line + "\n")  # a command-line report, not library logging


def median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    n = 64
    prompts, completions = [""] * n, [str(i % 3) for i in range(n)]
    rows = [{"answer": "1"}] * n
    one = SandboxSettings(workers=1)

    start = median_s(lambda: SandboxPool(Program(TRIVIAL), one).close(), max(3, args.repeats // 4))
    with SandboxPool(Program(TRIVIAL), one) as pool:
        call = median_s(lambda: pool.call(["", "1", {"answer": "1"}], 5.0, 5), args.repeats * 10)
    inline_fn = build_reward_fn(SPECS.validate_python([{"type": "exact_match"}]))
    inline = median_s(lambda: inline_fn(prompts, completions, rows), args.repeats)
    report(f"pool start (1 worker): {start * 1e3:.1f} ms; one call round trip: {call * 1e6:.0f} us")
    report(f"step of {n}, inline exact_match: {inline * 1e3:.2f} ms")
    python_spec = SPECS.validate_python([{"type": "python", "code": TRIVIAL}])
    for workers in sorted({1, SandboxSettings().workers}):
        with build_reward_fn(python_spec, sandbox=SandboxSettings(workers=workers)) as reward_fn:
            reward_fn(prompts, completions, rows)  # warm
            step = median_s(lambda fn=reward_fn: fn(prompts, completions, rows), args.repeats)
        ratio = step / inline
        report(f"step of {n}, python reward, {workers} worker(s): {step * 1e3:.1f} ms ({ratio:.0f}x inline)")

    answers = [r"\boxed{\frac{1}{2}}", r"\boxed{2x+1}", r"\boxed{0.4}", "Answer: 3"] * (n // 4)
    math_rows = [{"answer": a} for a in ("0.5", "1+2x", "0.5", "3")] * (n // 4)
    config = {"extraction": "boxed_or_marker", "marker": "Answer:"}
    in_process = median_s(
        lambda: [math_equivalence.score(c, r["answer"], config) for c, r in zip(answers, math_rows, strict=True)],
        max(3, args.repeats // 4),
    )
    math_spec = SPECS.validate_python([{"type": "math_equivalence"}])
    with build_reward_fn(math_spec) as reward_fn:
        reward_fn(prompts, answers, math_rows)
        sandboxed = median_s(lambda: reward_fn(prompts, answers, math_rows), max(3, args.repeats // 4))
    report(
        f"step of {n}, math_equivalence: in-process {in_process * 1e3:.1f} ms, sandboxed "
        f"({SandboxSettings().workers} workers) {sandboxed * 1e3:.1f} ms ({sandboxed / in_process:.2f}x)"
    )


if __name__ == "__main__":
    main()
