"""GRPO step speed and memory: this engine against TRL's GRPOTrainer, same workload, same run.

    .venv/bin/python -m bench.grpo_vs_trl                   # reference workload, beta 0 and 0.04
    .venv/bin/python -m bench.grpo_vs_trl --steps 20 --betas 0.04
    .venv/bin/python -m bench.grpo_vs_trl --preset gpu      # 0.5B-class model, bf16, on a CUDA machine
    .venv/bin/python -m bench.grpo_vs_trl --quick           # tiny smoke run: checks the script, times nothing

Builds the workload (bench/workload.py), measures the matmul rate, then runs each trainer for each
beta in its own subprocess (one after the other, so they do not compete for the cores, and so each
process's peak RSS is its own) and prints seconds per step, memory, the time split, completion
lengths, the distance from the matmul floor (bench/flops.py) and the ratios ours / TRL.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import AutoConfig
from transformers.utils.logging import disable_progress_bar

from bench.flops import Shape, matmul_rate
from bench.measure import QUICK_SHAPE, REFERENCE_SHAPE, WorkerResult
from bench.report import summarise, write_report
from bench.workload import PRESETS, build_workload

REPO = Path(__file__).resolve().parent.parent
TRAINERS = ("engine", "trl")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="measured steps per trainer (median over them)")
    parser.add_argument("--warmup", type=int, default=2, help="steps run first and not measured")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run each trainer this many times per beta, alternating the order; steps are pooled",
    )
    parser.add_argument("--betas", default="0,0.04", help="comma-separated KL coefficients, one run each")
    parser.add_argument("--trainers", default=",".join(TRAINERS), help="comma-separated subset of engine,trl")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".bench-cache", help="built workloads")
    parser.add_argument("--threads", type=int, help="torch threads in each worker (default: torch's default)")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny preset and batch, 1 warm-up + 1 step, beta 0.04, one thread, both "
        "trainers side by side (checks that everything runs; its figures mean nothing)",
    )
    parser.add_argument("--worker", choices=TRAINERS, help=argparse.SUPPRESS)  # internal: run one trainer
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.shape = REFERENCE_SHAPE
    if args.quick:
        args.preset, args.steps, args.warmup, args.betas, args.threads = "smoke", 1, 1, "0.04", 1
        args.shape = QUICK_SHAPE
    args.beta_list = [float(b) for b in args.betas.split(",")]
    args.trainer_list = [t for t in args.trainers.split(",") if t]
    if unknown := set(args.trainer_list) - set(TRAINERS):
        parser.error(f"unknown trainers {sorted(unknown)}; choose from {TRAINERS}")
    if args.quick:
        args.repeats = 1
    if min(args.steps, args.repeats) < 1 or args.warmup < 0 or (args.threads is not None and args.threads < 1):
        parser.error("--steps, --repeats and --threads must be >= 1, --warmup >= 0")
    return args


def run_worker(args: argparse.Namespace) -> None:
    """Inside a worker subprocess: run one trainer and write its WorkerResult."""
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = PRESETS[args.preset].dtype
    total = args.warmup + args.steps
    beta = args.beta_list[0]
    if args.worker == "engine":
        from bench.run_engine import run
    else:
        from bench.run_trl import run
    run(args.model_dir, beta, total, dtype, args.shape).save(args.out)


def worker_command(args: argparse.Namespace, trainer: str, beta: float, model_dir: Path, out: Path) -> list[str]:
    command = [
        sys.executable, "-m", "bench.grpo_vs_trl", "--worker", trainer, "--preset", args.preset,
        "--steps", str(args.steps), "--warmup", str(args.warmup), "--betas", str(beta),
        "--model-dir", str(model_dir), "--out", str(out),
    ]  # fmt: skip
    if args.quick:
        command.append("--quick")
    if args.threads:
        command += ["--threads", str(args.threads)]
    return command


def run_trainers(
    args: argparse.Namespace, model_dir: Path, scratch: Path
) -> dict[float, dict[str, list[WorkerResult]]]:
    """Every trainer for every beta, `--repeats` times; repeats alternate which trainer goes first, so
    a slow spell of a shared machine does not fall on one side only."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "PYTHONPATH": str(REPO)}
    results: dict[float, dict[str, list[WorkerResult]]] = {}
    for beta in args.beta_list:
        for repeat in range(args.repeats):
            order = args.trainer_list if repeat % 2 == 0 else args.trainer_list[::-1]
            jobs = []
            for trainer in order:
                out = scratch / f"{trainer}-{beta}-{repeat}.json"
                command = worker_command(args, trainer, beta, model_dir, out)
                # The worker's stdout (TRL prints its logs there) goes to our stderr: stdout is the report.
                process = subprocess.Popen(command, cwd=REPO, env=env, stdout=2)  # fd 2: our stderr
                if not args.quick:  # measurements run one at a time; the smoke run overlaps them
                    process.wait()
                jobs.append((trainer, process, out))
            failed = [trainer for trainer, process, _ in jobs if process.wait() != 0]
            if failed:
                raise SystemExit(f"the {', '.join(failed)} worker(s) failed (beta {beta}); see the log above")
            for trainer, _, out in sorted(jobs, key=lambda job: args.trainer_list.index(job[0])):
                results.setdefault(beta, {}).setdefault(trainer, []).append(WorkerResult.load(out))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    disable_progress_bar()
    if args.worker:
        run_worker(args)
        return 0
    preset = PRESETS[args.preset]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if preset.dtype == "bf16" else torch.float32
    if device.type == "cpu" and dtype == torch.bfloat16:
        raise SystemExit(f"preset {preset.name!r} runs in bf16 and needs a CUDA device")
    model_dir = build_workload(preset, args.cache_dir)
    shape = Shape.from_config(AutoConfig.from_pretrained(model_dir))
    threads = torch.get_num_threads()
    try:  # the matmul rate with the workers' thread count
        torch.set_num_threads(args.threads or threads)
        rate = matmul_rate(device, dtype, sizes=(256,) if args.quick else (512, 1024, 2048))
    finally:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        results = run_trainers(args, model_dir, Path(scratch))
    setting = {
        "preset": preset.name,
        "device": str(device),
        "dtype": preset.dtype,
        "threads": args.threads or threads,
        "workload": args.shape.describe(),
        "matmul_gflops": rate,
        "warmup_steps": args.warmup,
        "measured_steps": args.steps,
        "repeats": args.repeats,
    }
    summaries = {
        beta: {name: summarise(result, args.warmup, shape, rate) for name, result in by_trainer.items()}
        for beta, by_trainer in results.items()
    }
    write_report(sys.stdout, setting, summaries, quick=args.quick)
    if args.json:
        raw = {str(b): {n: [asdict(r) for r in runs] for n, runs in t.items()} for b, t in results.items()}
        args.json.write_text(json.dumps({"setting": setting, "summaries": summaries, "raw": raw}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
