"""Launch a multi-device job: one process per device under torch's elastic launcher (torchrun).

The worker that claimed the job stays its owner (heartbeat, final status); the ranks run
workers/rank_main.py, rank 0 writing metrics, events and checkpoints to the database as a one-process
job does, and every rank leaving its outcome in a small JSON file. The launcher runs in its own session
(process group): whatever happens, the group is killed when the launch returns, so no rank outlives it.

Outcomes:
- rank 0 reports succeeded / cancelled / lost / drained: the job ends that way (or is requeued);
- a rank reports an error of the job's own (its reward function raised, a safeguard stopped it): the job
  fails with that error;
- otherwise (a rank killed, out of memory: it reports nothing, and its peers at most a communication
  error): torchrun tore the group down; the attempt counts and the job is requeued, to resume from its
  latest checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

OUTCOME = "outcome-rank{rank}.json"


class RankCrashed(Exception):
    """A rank died without reporting (killed, OOM): the attempt failed; the job resumes elsewhere."""

    code = "rank_crashed"


class RankFailed(Exception):
    """A rank reported an exception; carries its error body."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", "a rank failed"))
        self.code = error.get("code") or "training_failed"
        self.param = error.get("param")


@dataclass(frozen=True)
class LaunchRequest:
    job_id: uuid.UUID
    worker_id: str
    devices: int
    run_dir: Path  # outcome files and launcher logs
    resume_from: Path | None
    model_source: str | None  # init_from weights prepared by the worker, else None
    drain_flags: list[Path]


def command(request: LaunchRequest) -> list[str]:
    """torchrun on this machine (--standalone: a local rendezvous on a free port), no restarts: a failed
    attempt is retried by the service (requeue + resume from checkpoint), not by the launcher."""
    args = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
        "--nproc-per-node", str(request.devices), "--max-restarts", "0",
        "-m", "workers.rank_main", "--job-id", str(request.job_id), "--worker-id", request.worker_id,
        "--run-dir", str(request.run_dir),
    ]  # fmt: skip
    if request.resume_from is not None:
        args += ["--resume-from", str(request.resume_from)]
    if request.model_source is not None:
        args += ["--model-source", request.model_source]
    for flag in request.drain_flags:
        args += ["--drain-flag", str(flag)]
    return args


def read_outcomes(run_dir: Path, devices: int) -> dict[int, dict[str, Any]]:
    outcomes = {}
    for rank in range(devices):
        path = run_dir / OUTCOME.format(rank=rank)
        if path.is_file():
            outcomes[rank] = json.loads(path.read_text())
    return outcomes


def launch(request: LaunchRequest, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the ranks to the end; returns rank 0's outcome ({'outcome': ..., 'error': ...}) or raises
    RankFailed / RankCrashed (see the module docstring)."""
    request.run_dir.mkdir(parents=True, exist_ok=True)
    for stale in request.run_dir.glob("outcome-rank*.json"):
        stale.unlink()
    environment = {**os.environ, **(env or {})}
    environment.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default too; set here so it is explicit
    log = request.run_dir / "launcher.log"
    with open(log, "ab") as output:
        process = subprocess.Popen(command(request), env=environment, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=die_with_parent)  # fmt: skip
        try:
            returncode = process.wait()
        finally:
            _kill_group(process.pid)
    try:
        return decide(read_outcomes(request.run_dir, request.devices), returncode)
    except RankCrashed:
        tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
        logger.error("launcher exited with %s and no rank reported an error; log tail:\n%s", returncode, tail)
        raise


def decide(outcomes: dict[int, dict[str, Any]], returncode: int) -> dict[str, Any]:
    """Rank 0's outcome, or RankFailed / RankCrashed (see the module docstring)."""
    if 0 in outcomes and outcomes[0].get("outcome") != "failed":
        return outcomes[0]
    # A rank that died reports nothing, and its peers fail inside a collective ("connection reset"): those
    # are not the job's errors. An error of the job's own (a reward function raising, a bad model) is.
    failed = [o for o in outcomes.values() if o.get("outcome") == "failed"]
    own = [o.get("error") or {} for o in failed if not _is_communication_error(o)]
    if own:
        raise RankFailed(own[0])
    raise RankCrashed(f"a rank of the job died (launcher exit code {returncode}); the process group was torn down")


def _is_communication_error(outcome: dict[str, Any]) -> bool:
    """A collective failed because a peer went away. Read from the rank's raw exception text: the job's
    error message hides internal exceptions (app/schemas/job_error.py)."""
    message = str(outcome.get("exception") or (outcome.get("error") or {}).get("message", ""))
    return "DistBackendError" in message or any(
        sign in message for sign in ("gloo/transport", "Connection reset by peer", "NCCL error", "Connection closed")
    )


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (a worker killed with -9 takes its launcher,
    and the launcher its ranks, along). Elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_group(pid: int) -> None:
    """SIGKILL what is left of the launcher's process group (normally nothing)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def settings_env(settings: Any) -> dict[str, str]:
    """The worker's settings as the environment the ranks read them from (app.core.config aliases)."""
    env = {
        "GRPO_DATA_DIR": str(Path(settings.data_dir).resolve()),
        "DATABASE_URL": settings.database_url,
        "CELERY_BROKER_URL": settings.broker_url,
        "GRPO_STORAGE_URL": settings.storage_url,
        "GRPO_LOG_FORMAT": settings.log_format,
        "GRPO_LOG_LEVEL": settings.log_level,
        "GRPO_MODEL_ROOTS": json.dumps([str(root) for root in settings.model_roots]),
        "GRPO_SECRET_KEY": settings.secret_key.get_secret_value(),
        "GRPO_ENV": settings.environment,
    }
    if settings.metrics_token is not None:
        env["GRPO_METRICS_TOKEN"] = settings.metrics_token.get_secret_value()
    return env


def launch_job(
    job_id: uuid.UUID,
    spec: Any,
    settings: Any,
    *,
    worker_id: str,
    resume_from: Path | None,
    model_source: str | None,
) -> dict[str, Any]:
    """Launch the ranks of a claimed job (see launch) with this worker's settings and drain marks."""
    from workers.drain import flags_for_this_task

    request = LaunchRequest(
        job_id=job_id,
        worker_id=worker_id,
        devices=spec.resources.devices,
        run_dir=Path(settings.work_dir) / str(job_id) / "ranks",
        resume_from=resume_from,
        model_source=model_source,
        drain_flags=flags_for_this_task(settings.data_dir),
    )
    logger.info("launching job %s on %d ranks", job_id, request.devices)
    return launch(request, env=settings_env(settings))


def raise_outcome(outcome: dict[str, Any]) -> None:
    """Rank 0's outcome as the exception a one-process job would have raised (none for success)."""
    from workers.drain import WorkerDraining
    from workers.reporting import JobCancelled, JobLost, JobPaused

    kind, message = outcome.get("outcome"), outcome.get("message", "")
    if kind == "cancelled":
        raise JobCancelled(message)
    if kind == "lost":
        raise JobLost(message)
    if kind == "drained":
        raise WorkerDraining(message)
    if kind == "paused":
        raise JobPaused(message, reason=outcome.get("reason", "requested"), data=outcome.get("data"))
    if kind != "succeeded":
        raise RankFailed(outcome.get("error") or {"message": f"unexpected outcome {outcome!r}"})
