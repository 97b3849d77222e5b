"""grpo_client (sync and async) and the `grpo` console command against a live API and worker, no mocks.

One stack (real uvicorn + Celery worker) for the whole module; on PostgreSQL when TEST_POSTGRES_URL is set.
"""

import asyncio
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grpo_client import AsyncGrpoClient, Conflict, GrpoClient, InvalidRequest, JobFailed, NotFound, RateLimited
from grpo_client.errors import Unauthorized
from scripts.stack import PROJECT_ROOT, Stack, admin
from tests.utils.live import shared_stack, tiny_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    env = {"GRPO_QUOTA_RETRY_AFTER_S": "1", "GRPO_HEARTBEAT_INTERVAL_S": "1"}
    with shared_stack(tmp_path_factory.mktemp("client"), worker=True, extra_env=env) as running:
        yield running


@pytest.fixture(scope="module")
def grpo(live: tuple[Stack, str]) -> Iterator[GrpoClient]:
    stack, key = live
    with GrpoClient(stack.base_url, key, backoff_s=0.1) as client:
        yield client


def cli(live: tuple[Stack, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    stack, key = live
    env = {**os.environ, "GRPO_URL": stack.base_url, "GRPO_API_KEY": key, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "grpo_client", *args], env=env, input=stdin, capture_output=True, text=True, timeout=240
    )


def test_submit_wait_follow_download_with_the_sync_client(grpo: GrpoClient, tmp_path: Path) -> None:
    job = grpo.jobs.submit(tiny_job(max_steps=4))
    assert job.status == "queued"
    statuses = [event.data["status"] for event in grpo.jobs.stream_events(job.id) if event.type == "status"]
    assert statuses == ["queued", "running", "succeeded"]  # the stream follows the job and ends with it
    done = grpo.jobs.wait(job.id, timeout_s=120)
    assert done.status == "succeeded" and done.progress.step == 4
    assert [row.step for row in grpo.jobs.metrics(job.id, names=["reward/mean"])] == [1, 2, 3, 4]
    resumed = list(grpo.jobs.stream_events(job.id, after=0, types=["metrics"]))
    assert [event.step for event in resumed] == [1, 2, 3, 4]
    assert [checkpoint.step for checkpoint in grpo.jobs.checkpoints(job.id)] == [3, 4]
    archive = grpo.jobs.download_checkpoint(job.id, 4, tmp_path / "ck.tar")
    with tarfile.open(archive) as tar:
        assert f"{job.id}-step000004/config.json" in tar.getnames()
    assert job.id in {listed.id for listed in grpo.jobs.iterate(status="succeeded")}


def test_typed_errors_carry_the_problem_document(grpo: GrpoClient, live: tuple[Stack, str]) -> None:
    with pytest.raises(NotFound) as missing:
        grpo.jobs.get("00000000-0000-0000-0000-000000000000")
    assert missing.value.problem.code == "not_found" and missing.value.request_id
    bad = tiny_job()
    bad["grpo"]["group_size"] = 1
    with pytest.raises(InvalidRequest) as invalid:
        grpo.jobs.submit(bad)
    assert [error.field for error in invalid.value.problem.errors] == ["grpo.group_size"]
    with pytest.raises(Unauthorized), GrpoClient(live[0].base_url, "grpo_not-a-key") as stranger:
        stranger.jobs.list()


def test_creates_are_idempotent(grpo: GrpoClient) -> None:
    first = grpo.jobs.submit(tiny_job(max_steps=1), idempotency_key="pipeline-run-7")
    again = grpo.jobs.submit(tiny_job(max_steps=1), idempotency_key="pipeline-run-7")
    assert again.id == first.id
    with pytest.raises(Conflict) as reused:
        grpo.jobs.submit(tiny_job(max_steps=2), idempotency_key="pipeline-run-7")
    assert reused.value.code == "idempotency_key_reused"
    grpo.jobs.wait(first.id, timeout_s=120)


def test_429_is_retried_after_retry_after_and_then_raised(live: tuple[Stack, str]) -> None:
    stack, _ = live
    key = admin(stack.env, "create-key", "--tenant", "quota")
    admin(stack.env, "set-limits", "--tenant", "quota", "--max-running", "1", "--max-queued", "1")
    with GrpoClient(stack.base_url, key, max_retries=2) as quota:
        running = quota.jobs.submit(tiny_job(max_steps=500))  # holds the tenant's only running slot
        while quota.jobs.get(running.id).status != "running":
            time.sleep(0.2)
        waiting = quota.jobs.submit(tiny_job(max_steps=1))  # fills the queue quota
        started = time.monotonic()
        with pytest.raises(RateLimited) as limited:
            quota.jobs.submit(tiny_job(max_steps=1))
        assert time.monotonic() - started >= 2.0 and limited.value.retry_after_s == 1.0  # two waits of 1 s

        threading.Timer(1.5, lambda: quota.jobs.cancel(waiting.id)).start()
        patient = GrpoClient(stack.base_url, key, max_retries=10)
        accepted = patient.jobs.submit(tiny_job(max_steps=1))  # succeeds once the queue has room
        assert accepted.status == "queued"
        for job in (accepted, running):
            patient.jobs.cancel(job.id)
        with pytest.raises(JobFailed):
            patient.jobs.wait(running.id, timeout_s=120)
        patient.close()


def test_async_client(live: tuple[Stack, str]) -> None:
    stack, key = live

    async def run() -> None:
        async with AsyncGrpoClient(stack.base_url, key) as grpo:
            reward = await grpo.rewards.create("async-exact", {"type": "exact_match", "field": "answer"})
            scored = await grpo.rewards.test(reward.id, [{"completion": "4", "row": {"answer": "4"}}])
            assert scored.mean_total == 1.0
            submitted = await asyncio.gather(*(grpo.jobs.submit(tiny_job(max_steps=1)) for _ in range(3)))
            assert len({job.id for job in submitted}) == 3  # a fresh Idempotency-Key per call
            for job in submitted:
                await grpo.jobs.cancel(job.id)
            events = [event async for event in grpo.jobs.stream_events(submitted[0].id)]
            assert [event.data.get("status") for event in events if event.type == "status"][-1] == "cancelled"
            names = [dataset.name async for dataset in grpo.datasets.iterate()]
            assert isinstance(names, list)

    asyncio.run(run())


def test_console_command(live: tuple[Stack, str], tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "grpo"  # the installed entry point, when the project is installed
    if script.exists():
        assert subprocess.run([str(script), "--help"], capture_output=True, check=False).returncode == 0
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_job(max_steps=2)))
    submitted = cli(live, "jobs", "submit", str(spec), "--wait", "--timeout", "180")
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout.splitlines()[-1])
    assert job["status"] == "succeeded" and "succeeded step 2/2  reward " in submitted.stderr

    logs = cli(live, "jobs", "logs", job["id"], "--follow")
    assert logs.returncode == 0 and "status: job succeeded" in logs.stdout and "metrics step 2: reward " in logs.stdout

    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps([{"completion": "3", "row": {"answer": "3"}}, {"completion": "x", "row": {}}]))
    reward = tmp_path / "reward.json"
    reward.write_text(json.dumps({"type": "exact_match", "field": "answer"}))
    inline = cli(live, "rewards", "test", "--spec", str(reward), "--samples", str(samples))
    assert inline.returncode == 1  # the second sample has no 'answer' field: an error, so a failing exit
    assert json.loads(inline.stdout)["results"][0]["total"] == 1.0

    bad = tiny_job()
    bad["grpo"]["max_new_tokens"] = 0
    rejected = cli(live, "jobs", "submit", "-", stdin=json.dumps(bad))
    assert rejected.returncode == 1 and "grpo.max_new_tokens" in rejected.stderr
    problem = json.loads(rejected.stderr.splitlines()[-1])
    assert problem["status"] == 422 and problem["errors"][0]["field"] == "grpo.max_new_tokens"
