"""Runs for the multi-rank tests: one function per rank, importable by spawned processes.

Each case trains the tiny model for a few steps with the rank-invariant loop (parallel.py) and writes
rank 0's per-step metrics to `<out>/<case>.json`; checkpoints go to `<out>/<case>/`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from tests.engine.conftest import RecordingSink, digit_rows, make_config, repeat_reward
from workers.engine import LoraSettings, train
from workers.engine.distributed import World, init_world


def case_name(case: dict[str, Any]) -> str:
    return "-".join(f"{k}={v}" for k, v in sorted(case.items()))


def run_case(case: dict[str, Any], world: World, cache: Path, out: Path, resume: Path | None = None) -> None:
    case = dict(case)
    strategy = case.pop("strategy", "ddp")
    world = World(rank=world.rank, size=world.size, local_rank=world.local_rank, strategy=strategy)
    steps = case.pop("max_steps", 2)
    if case.pop("lora", False):
        case["lora"] = LoraSettings(r=4, alpha=8)
    config = make_config(cache, prompts_per_step=2, max_steps=steps, checkpoint_every=case.pop("every", 1000), **case)
    sink = RecordingSink()
    work = out / "work"
    train(config, digit_rows(), repeat_reward, sink, work_dir=work, resume_from=resume, world=world)
    if world.is_main:
        (out / "metrics.json").write_text(json.dumps(sink.run_metrics()))


def run_rank(rank: int, size: int, port: int, jobs: list[tuple[dict[str, Any], str, str | None]], cache: str) -> None:
    """Entry point of a spawned rank: join the gloo group, run every job (case, out dir, resume dir)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size))
    os.environ["LOCAL_RANK"] = str(rank)
    torch.set_num_threads(1)
    world = init_world("ddp", "cpu", timeout_s=120)  # a deadlock fails the test instead of hanging CI
    try:
        for case, out, resume in jobs:
            run_case(case, world, Path(cache), Path(out), Path(resume) if resume else None)
    finally:
        torch.distributed.destroy_process_group()
