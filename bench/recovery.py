"""How long a job waits after its worker is killed with SIGKILL (issue 14 item 8), on real processes.

    .venv/bin/python -m bench.recovery                       # both cases, the service's default heartbeat
    .venv/bin/python -m bench.recovery --case child          # only the pool child is killed

The API and a Celery worker (prefork, concurrency 1) run as in the README demo, on the embedded SQLite
database and broker (or DATABASE_URL / CELERY_BROKER_URL from the environment). A long job is submitted;
once it has recorded a few steps the worker is killed:

- `child`: SIGKILL to the pool child running the job. The worker's main process sees it die and, with
  task_reject_on_worker_lost, puts the message back at once; a new child receives it.
- `worker`: SIGKILL to the whole worker (main process and child), then a new worker is started, as a
  supervisor (systemd, Kubernetes, docker restart policy) would.

Recovery time = from the kill to the job's `resumed` event (the new attempt has loaded its checkpoint and
is about to train), read from the database. The 'worker' figure includes the new worker's start-up.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import select

from app.core.db import make_engine, make_session_factory
from app.models import Job, JobEvent
from scripts.stack import Stack, admin, running_stack


def job_spec() -> dict[str, object]:
    return {
        "name": "recovery",
        "model": {"source": "tiny-demo"},
        "dataset": {"rows": [{"prompt": f"copy {d}:", "answer": str(d)} for d in range(10)]},
        "rewards": [{"type": "exact_match", "field": "answer"}],
        "grpo": {"group_size": 4, "prompts_per_step": 2, "max_steps": 100000, "max_new_tokens": 4, "seed": 3},
        "checkpoint": {"every": 3, "keep_last": 2},
    }


def pool_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def wait(condition, timeout_s: float, what: str):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not happen within {timeout_s:.0f} s")


def measure(stack: Stack, case: str, timeout_s: float) -> float:
    key = admin(stack.env, "create-key", "--tenant", f"bench-{uuid.uuid4().hex[:6]}")
    url = stack.env.get("DATABASE_URL") or f"sqlite:///{stack.env['GRPO_DATA_DIR']}/grpo.db"
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    headers = {"Authorization": f"Bearer {key}"}
    job_id = uuid.UUID(httpx.post(f"{stack.base_url}/v1/jobs", json=job_spec(), headers=headers).json()["id"])

    def job() -> Job:
        with sessions() as session:
            row = session.get(Job, job_id)
            assert row is not None
            return row

    def resumed() -> bool:
        with sessions() as session:
            return session.scalar(select(JobEvent.id).where(JobEvent.job_id == job_id, JobEvent.type == "resumed"))

    wait(lambda: job().current_step >= 5, 120, "step 5")
    assert stack.worker is not None
    if case == "child":
        (child,) = pool_children(stack.worker.pid)
        os.kill(child, signal.SIGKILL)
        killed = time.monotonic()
    else:
        os.killpg(stack.worker.pid, signal.SIGKILL)
        killed = time.monotonic()
        stack.worker.wait()
        stack.restart_worker()
    wait(resumed, timeout_s, "the job's resumption")
    took = time.monotonic() - killed
    with sessions() as session:  # who noticed: the watchdog ("requeued") or a redelivered task ("taken over")
        how = session.scalars(
            select(JobEvent.message).where(JobEvent.job_id == job_id, JobEvent.type == "status").order_by(JobEvent.id)
        ).all()
    print(f"   {case}: " + " | ".join(how), flush=True)
    with httpx.Client(base_url=stack.base_url, headers=headers) as client:
        client.post(f"/v1/jobs/{job_id}/cancel")
    engine.dispose()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=["child", "worker", "both"], default="both")
    parser.add_argument("--timeout", type=float, default=400, help="give up waiting for the resumption after this")
    args = parser.parse_args()
    cases = ["child", "worker"] if args.case == "both" else [args.case]
    extra = {k: v for k, v in os.environ.items() if k in ("DATABASE_URL", "CELERY_BROKER_URL")}
    for case in cases:
        with (
            tempfile.TemporaryDirectory(prefix="grpo-recovery-") as tmp,
            running_stack(Path(tmp), extra_env=extra) as stack,
        ):
            took = measure(stack, case, args.timeout)
            print(f"{case:6s} killed with SIGKILL: resumed after {took:6.1f} s", flush=True)


if __name__ == "__main__":
    main()
