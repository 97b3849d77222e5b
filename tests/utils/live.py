"""Helpers for tests against real processes (uvicorn + a Celery worker): a module-wide stack, a tiny job
spec, waiting for a job, reading all its metrics."""

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from scripts.stack import PROJECT_ROOT, Stack, admin, running_stack
from tests.utils.services import POSTGRES_URL, fresh_postgres_database

FAST_HEARTBEAT = {"GRPO_HEARTBEAT_INTERVAL_S": "1", "GRPO_HEARTBEAT_TIMEOUT_S": "4"}


ARTIFACTS = PROJECT_ROOT / "test-artifacts"  # browser screenshots (gitignored)


@contextlib.contextmanager
def shared_stack(
    data_dir: Path, *, worker: bool, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[Stack, str]]:
    """One stack for a whole test module, with an API key of a tenant with generous limits.

    On PostgreSQL when TEST_POSTGRES_URL is set (the stricter backend: NUL bytes, types), else SQLite;
    the broker is the embedded SQLite transport either way.
    """
    with contextlib.ExitStack() as resources:
        env = dict(extra_env or {})
        if POSTGRES_URL:
            env["DATABASE_URL"] = resources.enter_context(fresh_postgres_database())
        stack = resources.enter_context(running_stack(data_dir, extra_env=env, worker=worker))
        key = admin(stack.env, "create-key", "--tenant", "live")
        admin(stack.env, "set-limits", "--tenant", "live", "--max-queued", "10000", "--max-running", "10")
        yield stack, key


TERMINAL = {"succeeded", "failed", "cancelled"}


def wait_for(
    client: httpx.Client, job_id: str, *, until: set[str] = TERMINAL, min_step: int = 0, timeout_s: float = 240
) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["status"] in until and job["progress"]["step"] >= min_step:
            return job
        if job["status"] in TERMINAL and job["status"] not in until:
            raise AssertionError(f"job ended {job['status']}: {job['error']}")
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} did not reach {until} (step >= {min_step}) in {timeout_s} s: {job}")


def all_metrics(client: httpx.Client, job_id: str) -> dict[int, dict[str, float]]:
    rows, cursor = {}, None
    while True:
        params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"/v1/jobs/{job_id}/metrics", params=params).raise_for_status().json()
        rows.update({row["step"]: row["values"] for row in page["data"]})
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def tiny_job(max_steps: int = 6, **overrides: object) -> dict:
    spec = {
        "name": "integration",
        "model": {"source": "tiny-demo"},
        "dataset": {"rows": [{"prompt": f"{d}:", "answer": str(d)} for d in range(10)]},
        "rewards": [{"type": "exact_match", "field": "answer"}],
        "grpo": {
            "group_size": 4,
            "prompts_per_step": 2,
            "max_steps": max_steps,
            "max_new_tokens": 4,
            "learning_rate": 1e-3,
            "seed": 3,
        },
        "checkpoint": {"every": 3, "keep_last": 2},
    }
    for key, value in overrides.items():  # dict sections are merged, anything else replaced
        current = spec.get(key)
        spec[key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
    return spec
