"""One rank of a multi-device job, started by torchrun (workers/launch.py): `python -m workers.rank_main`.

Every rank loads the job's inputs and trains its share (workers/engine/parallel.py); rank 0 alone holds
the database sink. Each rank leaves `outcome-rank<r>.json` in the run directory: rank 0 how the job
ended, the others 'succeeded', 'stopped' (by rank 0's decision) or their error; a rank that dies leaves none.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import traceback
import uuid
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.core.db import make_engine, make_session_factory
from app.core.logs import configure_logging
from app.core.storage import make_store
from app.models import Job
from app.schemas.job import JobSpec
from workers.drain import WorkerDraining
from workers.engine import EvalReport, StepReport, train
from workers.engine.distributed import choose_strategy, init_world
from workers.judges import judge_resolver
from workers.launch import OUTCOME, die_with_parent
from workers.manifest import base_manifest
from workers.reporting import DatabaseSink, JobCancelled, JobLost, JobPaused
from workers.runner import error_body, job_work_dir, rebuilt_monitor, service_inputs

logger = logging.getLogger(__name__)


class NullSink:
    """Ranks > 0 report nothing: rank 0 reports the global step."""

    def on_step(self, report: StepReport) -> None:
        pass

    def on_checkpoint(self, step: int, path: Path) -> None:
        pass

    def on_eval(self, report: EvalReport) -> None:
        pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job-id", type=uuid.UUID, required=True)
    parser.add_argument("--worker-id", required=True, help="the worker that claimed the job (ownership checks)")
    parser.add_argument("--run-dir", type=Path, required=True, help="where outcome files go")
    parser.add_argument("--resume-from", type=Path, default=None)
    parser.add_argument("--model-source", default=None, help="init_from weights the worker prepared")
    parser.add_argument("--drain-flag", type=Path, action="append", default=[])
    return parser.parse_args(argv)


def model_parameters(source: str) -> int:
    """Parameter count from the model's config alone (weights on the meta device, nothing loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source))
    return sum(p.numel() for p in model.parameters())


def run_rank(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Train this rank's share; rank 0's outcome, or 'stopped' on a rank stopped by rank 0's decision."""
    from workers.engine.model import model_path
    from workers.engine.parallel import StoppedByMain

    sessions = make_session_factory(make_engine(settings.database_url))
    store = make_store(settings)
    with sessions() as session:
        job = session.get(Job, args.job_id)
        assert job is not None, f"job {args.job_id} does not exist"
        spec, tenant_id = JobSpec.model_validate(job.spec), job.tenant_id
    # The same spec -> inputs function as the single-process task and grpo-train (workers/spec.py).
    inputs = service_inputs(spec, settings=settings, store=store, sessions=sessions, tenant_id=tenant_id)
    config = inputs.config
    if args.model_source:
        config.model_source = args.model_source
    strategy = spec.resources.strategy or choose_strategy(None, model_parameters(model_path(config)))
    world = init_world(strategy, spec.resources.accelerator)
    sink: Any = NullSink()
    if world.is_main:
        monitor = rebuilt_monitor(spec, sessions, args.job_id, args.resume_from)
        manifest = base_manifest(spec, inputs.rows, config)
        sink = DatabaseSink(
            sessions, store, args.job_id, args.worker_id, spec, monitor, manifest=manifest,
            drain_flags=args.drain_flag, pause_at_checkpoint=True,
        )  # fmt: skip
    judges = judge_resolver(settings, sessions, tenant_id)
    try:
        with inputs.reward_fns(judges) as (reward_fn, eval_fn):
            train(
                config, inputs.rows, reward_fn, sink, work_dir=job_work_dir(settings, args.job_id),
                resume_from=args.resume_from, eval_rows=inputs.eval_rows, eval_reward_fn=eval_fn, world=world,
            )  # fmt: skip
        return {"outcome": "succeeded"}
    except StoppedByMain:
        return {"outcome": "stopped"}  # rank 0 reports why; this rank is only accounted for
    except JobCancelled as exc:
        return {"outcome": "cancelled", "message": str(exc)}
    except JobLost as exc:
        return {"outcome": "lost", "message": str(exc)}
    except WorkerDraining as exc:
        return {"outcome": "drained", "message": str(exc)}
    except JobPaused as exc:  # after the step's checkpoint (DatabaseSink: pause_at_checkpoint)
        return {"outcome": "paused", "message": str(exc), "reason": exc.reason, "data": exc.data}


def main(argv: list[str] | None = None) -> int:
    die_with_parent()  # the launcher killed: this rank goes too
    args = parse_args(argv)
    settings = Settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    rank = int(os.environ.get("RANK", "0"))
    outcome: dict[str, Any]
    try:
        outcome = run_rank(args, settings)
    except Exception as exc:
        logger.error("rank %s failed:\n%s", rank, traceback.format_exc())
        # `error` is what the job shows (no internal text); `exception` lets the launcher tell a peer's
        # death (a collective failing) from an error of the job's own (workers/launch.py::decide).
        outcome = {"outcome": "failed", "error": error_body(exc), "exception": f"{type(exc).__name__}: {exc}"[:4000]}
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()
    (args.run_dir / OUTCOME.format(rank=rank)).write_text(json.dumps(outcome))
    return 1 if outcome["outcome"] == "failed" else 0


if __name__ == "__main__":
    raise SystemExit(main())
