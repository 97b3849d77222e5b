"""Steps per second of a GRPO job on 1 vs N ranks (torchrun), and where a multi-rank step's time goes.

    python -m bench.distributed_scaling                      # this CPU: 1 and 2 ranks, one thread each
    python -m bench.distributed_scaling --preset gpu --ranks 1 2 4 8 --strategy fsdp   # a GPU node (NCCL)

The reference workload (bench/workload.py: the issue's ~5M-parameter model, 8 prompts x 8 completions,
<= 64 new tokens, DAPO, lr 1e-5) trains for --steps steps per world size under `torch.distributed.run`;
the first step is a warm-up and is left out. The global batch is the same for every world size (strong
scaling), so speedup = step time on 1 rank / on N, efficiency = speedup / N. The multi-rank loop is
workers/engine/parallel.py; its 1-rank form is the baseline (the one-process fast path, train.py, is
measured too, as `fast path`: it samples one batched stream instead of one stream per prompt group).
Per step, rank 0 reports time/allreduce_s (summing gradients) and time/gather_s (FSDP: gathering the
shards before generation). Not a timed test: results go to --out (JSON) and stdout (a markdown table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

METRICS = (
    "time/step_s", "time/generation_s", "time/training_s", "time/allreduce_s", "time/gather_s",
    "throughput/tokens_per_s",
)  # fmt: skip


def rank_run(args: argparse.Namespace) -> None:
    """Inside torchrun: train --steps steps on this rank; rank 0 writes its per-step metrics."""
    import torch

    from bench.measure import LEARNING_RATE, dataset_rows, vowel_fraction
    from workers.engine import GRPOConfig, RewardBatch, train
    from workers.engine.distributed import init_world

    if args.accelerator == "cpu":
        torch.set_num_threads(args.threads)
    world = init_world(args.strategy, args.accelerator) if args.mode == "parallel" else None

    def reward(_p: list[str], completions: list[str], _r: list[dict[str, Any]]) -> RewardBatch:
        return RewardBatch(total=[vowel_fraction(c) for c in completions], components={})

    class Sink:
        def __init__(self) -> None:
            self.steps: list[dict[str, float]] = []

        def on_step(self, report: Any) -> None:
            self.steps.append({k: v for k, v in report.metrics.items() if k in METRICS})

        def on_checkpoint(self, step: int, path: Path) -> None:
            pass

        def on_eval(self, report: Any) -> None:
            pass

    config = GRPOConfig(
        model_source=args.model_dir, group_size=8, prompts_per_step=8, max_steps=args.steps, max_new_tokens=64,
        max_prompt_tokens=None, loss_type="dapo", learning_rate=LEARNING_RATE, beta=args.beta,
        precision="fp32" if args.accelerator == "cpu" else "bf16", device=args.accelerator,
        checkpoint_every=10**6, log_samples_per_step=0, seed=0,
    )  # fmt: skip
    sink = Sink()
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        train(config, dataset_rows(), reward, sink, work_dir=Path(work), world=world)
        total = time.perf_counter() - started
    if world is None or world.is_main:
        Path(args.result).write_text(json.dumps({"steps": sink.steps, "total_s": total}))
    if world is not None and world.active:
        torch.distributed.destroy_process_group()


def launch(args: argparse.Namespace, model_dir: Path, ranks: int, mode: str, out: Path) -> dict[str, Any]:
    result = out.with_suffix(f".{mode}-{ranks}.json")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
        "-m", "bench.distributed_scaling", "--rank-run", "--mode", mode, "--model-dir", str(model_dir),
        "--steps", str(args.steps), "--strategy", args.strategy, "--beta", str(args.beta),
        "--accelerator", args.accelerator, "--threads", str(args.threads), "--result", str(result),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    subprocess.run(command, check=True, env=env)
    data = json.loads(result.read_text())
    measured = data["steps"][1:]  # step 1 is the warm-up
    mean = {name: sum(s.get(name, 0.0) for s in measured) / len(measured) for name in METRICS}
    # completion tokens per step: runs that sample differently (the fast path) do different amounts of work
    mean["tokens"] = sum(s["throughput/tokens_per_s"] * s["time/step_s"] for s in measured) / len(measured)
    return {"ranks": ranks, "mode": mode, "steps_per_s": 1 / mean["time/step_s"], "mean": mean, "raw": data}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", choices=["cpu", "gpu", "smoke"])
    parser.add_argument("--ranks", type=int, nargs="+", default=None, help="world sizes (default 1 2)")
    parser.add_argument("--strategy", default="ddp", choices=["ddp", "fsdp"])
    parser.add_argument("--beta", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=6, help="steps per run; the first is a warm-up")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank (CPU)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/distributed_scaling.json"))
    parser.add_argument("--cache-dir", type=Path, default=Path(".bench-cache"))
    # internal: one rank under torchrun
    parser.add_argument("--rank-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="parallel", choices=["parallel", "fast"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--accelerator", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.accelerator = args.accelerator or ("cuda" if args.preset == "gpu" else "cpu")
    if args.rank_run:
        rank_run(args)
        return
    from bench.workload import PRESETS, build_workload

    model_dir = build_workload(PRESETS[args.preset], args.cache_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = [launch(args, model_dir, 1, "fast", args.out)]
    runs += [launch(args, model_dir, ranks, "parallel", args.out) for ranks in (args.ranks or [1, 2])]
    base = next(r for r in runs if r["mode"] == "parallel" and r["ranks"] == 1)["mean"]["time/step_s"]
    for r in runs:
        r["speedup"] = base / r["mean"]["time/step_s"]
        r["efficiency"] = r["speedup"] / r["ranks"]
    report = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "preset": args.preset, "strategy": args.strategy, "beta": args.beta, "threads_per_rank": args.threads,
        "runs": runs,
    }  # fmt: skip
    args.out.write_text(json.dumps(report, indent=2))
    print(table(report))  # noqa: T201 - the bench's output


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['preset']} preset, {report['strategy']}, beta {report['beta']}, {report['threads_per_rank']} "
        f"thread(s) per rank; {report['machine']}; {report['date']}",
        "",
        "| run | ranks | steps/s | speedup | efficiency | step s | generation s | training s | all-reduce s "
        "| gather s | tokens/step |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["runs"]:
        m = r["mean"]
        lines.append(
            f"| {r['mode']} | {r['ranks']} | {r['steps_per_s']:.3f} | {r['speedup']:.2f} | {r['efficiency']:.2f} "
            f"| {m['time/step_s']:.3f} | {m['time/generation_s']:.3f} | {m['time/training_s']:.3f} "
            f"| {m['time/allreduce_s']:.4f} | {m['time/gather_s']:.4f} | {m['tokens']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
