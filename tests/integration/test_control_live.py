"""Control of running jobs against a live API and a real Celery worker (one, concurrency 1), no mocks:
pause and resume through the `grpo` command and the client. On PostgreSQL when TEST_POSTGRES_URL is set."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from grpo_client import GrpoClient
from scripts.stack import PROJECT_ROOT, Stack
from tests.integration.conftest import shared_stack
from tests.integration.helpers import tiny_job
from tests.services.test_webhooks import Receiver, verify
from workers.engine.metrics import is_wall_clock

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    env = {"GRPO_HEARTBEAT_INTERVAL_S": "1", "GRPO_WEBHOOK_ALLOW_PRIVATE": "1", "GRPO_WEBHOOK_BACKOFF_S": "0.2"}
    with shared_stack(tmp_path_factory.mktemp("control"), worker=True, extra_env=env) as s:
        yield s


@pytest.fixture(scope="module")
def grpo(live: tuple[Stack, str]) -> Iterator[GrpoClient]:
    stack, key = live
    with GrpoClient(stack.base_url, key, backoff_s=0.1) as client:
        yield client


def cli(live: tuple[Stack, str], *args: str) -> dict:
    stack, key = live
    env = {**os.environ, "GRPO_URL": stack.base_url, "GRPO_API_KEY": key, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "grpo_client", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_status(grpo: GrpoClient, job_id, statuses: set[str], min_step: int = 0, timeout_s: float = 180):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = grpo.jobs.get(job_id)
        if job.status in statuses and job.progress.step >= min_step:
            return job
        assert job.status not in {"failed", "cancelled"}, job.error
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} never reached {statuses}: {job.status} at step {job.progress.step}")


def comparable(grpo: GrpoClient, job_id) -> dict[int, dict[str, float]]:
    return {
        row.step: {name: value for name, value in row.values.items() if not is_wall_clock(name)}
        for row in grpo.jobs.metrics(job_id)
    }


def test_pause_frees_the_worker_and_resume_continues_exactly(grpo: GrpoClient, live) -> None:
    spec = tiny_job(max_steps=12) | {"checkpoint": {"every": 10, "keep_last": 2}}
    straight = grpo.jobs.submit(spec)
    assert grpo.jobs.wait(straight.id, timeout_s=240).status == "succeeded"

    job = grpo.jobs.submit(spec)
    wait_status(grpo, job.id, {"running"}, min_step=2)
    assert grpo.jobs.pause(job.id).status == "pausing"  # the client here; the command resumes below
    paused = wait_status(grpo, job.id, {"paused"})
    assert 2 <= paused.progress.step < 12
    checkpoints = [c.step for c in grpo.jobs.checkpoints(job.id)]
    assert checkpoints[-1] == paused.progress.step  # the step in progress was checkpointed

    # The only worker is free: another job runs to the end while this one is paused.
    other = grpo.jobs.submit(tiny_job(max_steps=2))
    assert grpo.jobs.wait(other.id, timeout_s=120).status == "succeeded"
    assert grpo.jobs.get(job.id).status == "paused"

    assert cli(live, "jobs", "resume", str(job.id))["status"] == "queued"
    assert grpo.jobs.wait(job.id, timeout_s=240).status == "succeeded"
    assert comparable(grpo, job.id) == comparable(grpo, straight.id)


def test_budget_pause_raise_resume_then_reproduce_from_the_manifest(grpo: GrpoClient, live, tmp_path) -> None:
    spec = tiny_job(max_steps=5) | {"budget": {"reward_calls": 20}}  # 8 calls a step: pauses after step 3
    job = grpo.jobs.submit(spec)
    paused = grpo.jobs.wait(job.id, timeout_s=120)  # returns at a pause: it waits for a person
    assert paused.status == "paused" and paused.progress.step == 3 and paused.usage["reward_calls"] == 24
    [event] = [e for e in grpo.jobs.events(job.id, limit=1000).data if e.data.get("status") == "paused"]
    assert event.data["budget"] == "reward_calls" and event.data["used"] == 24
    assert cli(live, "jobs", "budget", str(job.id), "--reward-calls", "1000")["spec"]["budget"]["reward_calls"] == 1000
    assert cli(live, "jobs", "resume", str(job.id))["status"] == "queued"
    assert grpo.jobs.wait(job.id, timeout_s=120).status == "succeeded"

    manifest = cli(live, "jobs", "manifest", str(job.id), "5")
    assert manifest["step"] == 5 and manifest["dataset"]["rows"] == 10
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(tiny_job(max_steps=5)))
    assert cli(live, "jobs", "submit", "--dry-run", str(spec_file))["object"] == "job.dry_run"
    again = cli(live, "jobs", "reproduce", str(job.id), "5")
    assert grpo.jobs.wait(again["id"], timeout_s=120).status == "succeeded"
    assert comparable(grpo, again["id"]) == comparable(grpo, job.id)


def test_preflight_runs_on_the_worker_through_the_command(live, tmp_path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(tiny_job(max_steps=50)))
    answer = cli(live, "jobs", "preflight", str(spec_file), "--prompts", "3")
    assert answer["status"] == "succeeded"
    report = answer["report"]
    assert report["sampled"]["completions"] == 12 and report["estimate"]["total_s"] > 0
    assert report["tied_groups"]["groups"] == 3 and "exact_match" in report["graders"]


def test_the_worker_delivers_signed_webhooks_in_order_retrying_a_500(grpo: GrpoClient, live) -> None:
    receiver = Receiver([500])
    try:
        created = cli(live, "webhooks", "create", receiver.url, "--event-type", "status")
        job = grpo.jobs.submit(tiny_job(max_steps=2))
        assert grpo.jobs.wait(job.id, timeout_s=120).status == "succeeded"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(receiver.received) < 4:
            time.sleep(0.3)
    finally:
        receiver.server.shutdown()
    statuses = [json.loads(body)["data"]["status"] for _, _, body in receiver.received]
    assert statuses == ["queued", "queued", "running", "succeeded"]  # the 500 retried, the order kept
    assert all(verify(created["secret"], headers, body) for _, headers, body in receiver.received)
    log = grpo.webhooks.deliveries(created["id"])
    assert sorted(d["attempts"] for d in log) == [1, 1, 2] and {d["status"] for d in log} == {"succeeded"}
