"""Graceful drain: on SIGTERM a worker finishes its step, checkpoints, requeues its job and exits.

Celery's main process gets the SIGTERM (warm shutdown) and waits for the running task, which runs in a
pool child (prefork) or in the main process itself (solo). The main process marks the drain with a
file named after its pid; the task looks for its parent's (or its own) mark between steps, and a
multi-device job's rank 0 is handed the paths. A file rather than a signal: it reaches every process
of the job whatever the pool. A worker clears its own mark when it starts (a reused pid).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


class WorkerDraining(Exception):
    """Raised from the sink after the drain checkpoint: the job goes back to the queue."""


def drain_dir(data_dir: Path) -> Path:
    return Path(data_dir).resolve() / "drain"


def mark_draining(data_dir: Path, pid: int | None = None) -> Path:
    """Called in the Celery main process when it starts a warm shutdown."""
    path = drain_dir(data_dir) / str(pid or os.getpid())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    logger.warning("worker draining: the running job stops after its next step and is requeued")
    return path


def clear_mark(data_dir: Path, pid: int | None = None) -> None:
    """At worker start: a mark left by an earlier process with the same pid must not drain this one."""
    (drain_dir(data_dir) / str(pid or os.getpid())).unlink(missing_ok=True)


def flags_for_this_task(data_dir: Path) -> list[Path]:
    """The marks that mean 'this task's worker is draining': its parent's (prefork) or its own (solo)."""
    return [drain_dir(data_dir) / str(os.getppid()), drain_dir(data_dir) / str(os.getpid())]


def is_draining(flags: list[Path]) -> bool:
    return any(flag.exists() for flag in flags)
