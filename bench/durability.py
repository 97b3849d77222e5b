"""What durability costs per training step: checkpointing, and the database writes of every step.

    .venv/bin/python -m bench.durability            # SQLite; PostgreSQL too when TEST_POSTGRES_URL is set
    .venv/bin/python -m bench.durability --steps 40 --sizes 64x2,256x4,512x8,1024x8
    .venv/bin/python -m bench.durability --quick    # smoke run: checks the script, its figures mean little

Everything is measured in this one process, one thing after the other, on the README demo's workload
(16 completions x 8 prompts, 3 new tokens), so every cost is printed next to the step time it adds to:

1. The training loop with checkpoint_every=1 against the same run that never checkpoints (steps/s of
   both, and their ratio). Every step is the worst case; the demo checkpoints every 100.
2. save_checkpoint inside the loop, by model size (tiny Qwen2 shapes, hidden x layers): the time
   between the step's report and the engine's on_checkpoint call (policy, AdamW state, RNG, fsyncs,
   rename, local pruning), the bytes written, and the fraction of that model's own step time.
3. One step's writes through the real sink (DatabaseSink.on_step: metric upserts, samples, progress,
   the metrics event, the cancel poll, one transaction) on SQLite and PostgreSQL, with the demo's 4
   logged samples and with 64; fresh steps and re-written ones (a resume). Plus on_checkpoint's service
   side: storing the checkpoint (LocalStore, hard links) and its row, retention.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import Engine, create_engine, text

from app.core.db import make_engine, make_session_factory
from app.core.migrate import upgrade_database
from app.core.storage import LocalStore
from app.models import Job
from app.schemas.job import JobSpec
from app.services import runs
from app.services.tenants import get_or_create_tenant
from workers.demo import demo_spec
from workers.engine import EvalReport, StepReport, train
from workers.engine.tiny import TinySpec, build_tiny_model
from workers.reporting import MONITORED, DatabaseSink
from workers.rewards import RewardMonitor
from workers.spec import engine_config_from_spec, parse_spec, reward_fn_from_spec, training_rows


class TimingSink:
    """Keeps each report and the clock at every call: step compute and checkpoint time fall out."""

    def __init__(self) -> None:
        self.reports: list[StepReport] = []
        self.stepped: list[float] = []  # perf_counter at on_step(k)
        self.saved: dict[int, float] = {}  # step -> perf_counter at on_checkpoint

    def on_step(self, report: StepReport) -> None:
        self.reports.append(report)
        self.stepped.append(time.perf_counter())

    def on_checkpoint(self, step: int, _path: Path) -> None:
        self.saved[step] = time.perf_counter()

    def on_eval(self, report: EvalReport) -> None:
        pass

    def split(self, skip: int) -> tuple[list[float], list[float]]:
        """(wall s per step including its checkpoint, checkpoint s) for the steps after the first `skip`."""
        walls, saves = [], []
        for k in range(skip + 1, len(self.stepped)):
            step = k + 1  # stepped[k] is step k + 1
            walls.append(self.stepped[k] - self.stepped[k - 1])
            if step - 1 in self.saved:
                saves.append(self.saved[step - 1] - self.stepped[k - 1])
        return walls, saves


def run_loop(model_dir: Path | None, steps: int, every: int, work: Path) -> TimingSink:
    spec = parse_spec(demo_spec())
    config = dataclasses.replace(
        engine_config_from_spec(spec, data_dir=work), max_steps=steps, checkpoint_every=every, keep_last=2
    )
    if model_dir is not None:
        config.model_source = str(model_dir)
    sink = TimingSink()
    train(config, training_rows(spec), reward_fn_from_spec(spec), sink, work_dir=work / f"run-{every}")
    return sink


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_loop(steps: int, work: Path) -> float:
    """Checkpoint every step vs never, same workload; returns the never-checkpointing step time (s)."""
    never = run_loop(None, steps, 10**9, work)
    every = run_loop(None, steps, 1, work)
    base, _ = never.split(skip=2)
    walls, saves = every.split(skip=2)
    base_s, wall_s, save_s = statistics.median(base), statistics.median(walls), statistics.median(saves)
    print("\n1. training loop, demo workload (tiny-demo model), median over steps")
    print(f"   never checkpointing      {base_s * 1e3:8.1f} ms/step")
    print(f"   checkpoint every step    {wall_s * 1e3:8.1f} ms/step   (ratio {wall_s / base_s:.2f})")
    print(f"   of which the checkpoint  {save_s * 1e3:8.1f} ms = {save_s / base_s:.2f} of a step")
    return base_s


def bench_sizes(sizes: list[tuple[int, int]], work: Path) -> None:
    print("\n2. checkpoint save in the loop vs model size (fp32 policy + AdamW state), median of 3")
    header = ("hidden x layers", "params", "written", "save", "MB/s", "step", "save/step")
    print("   " + " ".join(f"{name:>{width}}" for name, width in zip(header, (16, 9, 9, 9, 7, 9, 9), strict=True)))
    for hidden, layers in sizes:
        shape = TinySpec(hidden_size=hidden, intermediate_size=2 * hidden, num_layers=layers, num_heads=4)
        model_dir = build_tiny_model(work / "models", shape)
        sink = run_loop(model_dir, 5, 1, work / f"size-{hidden}x{layers}")
        walls, saves = sink.split(skip=1)
        save_s = statistics.median(saves)
        step_s = statistics.median(w - s for w, s in zip(walls, saves, strict=True))
        params = _param_count(model_dir)
        written = dir_bytes(work / f"size-{hidden}x{layers}" / "run-1" / "checkpoint-000005")
        print(
            f"   {f'{hidden} x {layers}':>16} {params / 1e6:8.2f}M {written / 1e6:7.1f}MB {save_s * 1e3:7.1f}ms "
            f"{written / 1e6 / save_s:7.0f} {step_s * 1e3:7.1f}ms {save_s / step_s:9.2f}"
        )


def _param_count(model_dir: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as handle:
        return sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())  # noqa: SIM118


@contextmanager
def database(kind: str, work: Path) -> Iterator[str]:
    """A fresh, migrated database of `kind`; PostgreSQL ones are created and dropped on TEST_POSTGRES_URL."""
    if kind == "sqlite":
        url = f"sqlite:///{work / 'bench.db'}"
        upgrade_database(url)
        yield url
        return
    server = os.environ["TEST_POSTGRES_URL"]
    name = f"grpo_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = server.rsplit("/", 1)[0] + f"/{name}"
        upgrade_database(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_sink(engine: Engine, work: Path) -> DatabaseSink:
    """The worker's sink for a claimed job, exactly as workers/runner.py builds it."""
    spec = JobSpec.model_validate(demo_spec())
    sessions = make_session_factory(engine)
    with sessions() as session:
        tenant = get_or_create_tenant(session=session, name="bench")
        job = Job(tenant_id=tenant.id, name="bench", spec=spec.model_dump(mode="json"), total_steps=10**6)
        session.add(job)
        session.commit()
        runs.claim_job(session=session, job_id=job.id, worker_id="bench", max_attempts=3)
        job_id = job.id
    monitor = RewardMonitor(spec.safeguards, MONITORED)
    return DatabaseSink(sessions, LocalStore(work / "store"), job_id, "bench", spec, monitor)


def time_calls(calls: list[Any]) -> float:
    """Median seconds of the calls, each a zero-argument callable."""
    durations = []
    for call in calls:
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


def bench_sink(kind: str, reports: list[StepReport], checkpoint: Path, step_s: float, work: Path, n: int) -> None:
    work.mkdir(parents=True, exist_ok=True)
    with database(kind, work) as url:
        engine = make_engine(url)
        sink = make_sink(engine, work)
        print(f"   {kind}:")
        next_step = 1
        for count in (4, 64):
            samples = (list(reports[0].samples) * 64)[:count]
            steps = list(range(next_step, next_step + n))
            next_step += n

            def write(step: int, samples: list[Any] = samples) -> Any:
                report = reports[step % len(reports)]
                return lambda: sink.on_step(StepReport(step=step, metrics=report.metrics, samples=samples))

            fresh = time_calls([write(step) for step in steps])
            again = time_calls([write(step) for step in steps])  # a resumed run re-writes its steps
            print(
                f"     on_step, {len(reports[0].metrics)} metrics + {count:2d} samples: fresh {fresh * 1e3:6.2f} ms "
                f"({fresh / step_s:.3f} of a step), re-written {again * 1e3:6.2f} ms ({again / step_s:.3f})"
            )
        saves = [lambda step=step: sink.on_checkpoint(step, checkpoint) for step in range(1, 11)]
        stored = time_calls(saves)
        print(
            f"     on_checkpoint (store {dir_bytes(checkpoint) / 1e3:.0f} kB by hard links, row, retention): "
            f"{stored * 1e3:6.2f} ms ({stored / step_s:.3f} of a step)"
        )
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="steps per loop run (the first 2 are not timed)")
    parser.add_argument("--sizes", default="64x2,256x4,512x8,1024x8", help="model shapes, hidden x layers")
    parser.add_argument("--writes", type=int, default=30, help="sink writes timed per case")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few steps, small models")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.sizes, args.writes = 6, "64x2,128x2", 5
    torch.set_num_threads(1)  # the demo's setting; also what keeps runs comparable on a shared CPU
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="grpo-bench-") as tmp:
        work = Path(tmp)
        step_s = bench_loop(args.steps, work)
        sizes = [tuple(int(x) for x in size.split("x")) for size in args.sizes.split(",")]
        bench_sizes(sizes, work)  # type: ignore[arg-type]
        reports = run_loop(None, 4, 10**9, work / "reports").reports
        checkpoint = next((work / "run-1").glob("checkpoint-*"))
        print(f"\n3. one step's database writes through the real sink (demo step: {step_s * 1e3:.1f} ms)")
        kinds = ["sqlite", "postgresql"] if os.environ.get("TEST_POSTGRES_URL") else ["sqlite"]
        for kind in kinds:
            bench_sink(kind, reports, checkpoint, step_s, work / kind, args.writes)
        if len(kinds) == 1:
            print("   postgresql: skipped (set TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
