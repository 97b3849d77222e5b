"""The full path with real processes: HTTP submit -> Celery worker -> engine -> metrics rows -> succeeded."""

import io
import os
import signal
import tarfile
import time
import uuid

import pytest
import torch
from safetensors.torch import load_file
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from transformers import AutoModelForCausalLM, AutoTokenizer

from app.core.db import make_engine
from app.models import JobMetric, JobSample
from tests.utils.live import all_metrics, tiny_job, wait_for
from workers.engine.metrics import is_wall_clock

pytestmark = [pytest.mark.integration, pytest.mark.slow]
STEPS = 30  # the crash test's run: the kill lands after step 6 (first checkpoint at 4), long before the end


def stored_rows(stack, job_id: str) -> dict[str, object]:
    """(step, name) -> count of the job's metric rows, and step -> count of its sample rows, from the database."""
    url = stack.env.get("DATABASE_URL") or f"sqlite:///{stack.env['GRPO_DATA_DIR']}/grpo.db"
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            key = uuid.UUID(job_id)
            metrics = session.execute(
                select(JobMetric.step, JobMetric.name, func.count())
                .where(JobMetric.job_id == key)
                .group_by(JobMetric.step, JobMetric.name)
            )
            samples = session.execute(
                select(JobSample.step, func.count()).where(JobSample.job_id == key).group_by(JobSample.step)
            )
            counts = {"metrics": {(step, name): n for step, name, n in metrics}, "samples": dict(list(samples))}
    finally:
        engine.dispose()
    assert set(counts["metrics"].values()) == {1} and counts["samples"]
    return {"metrics": set(counts["metrics"]), "samples": counts["samples"]}


def final_weights(api, job_id: str, into) -> dict[str, torch.Tensor]:
    archive = api.get(f"/v1/jobs/{job_id}/checkpoints/{STEPS}/download").raise_for_status()
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        tar.extractall(into, filter="data")
    return load_file(str(into / f"{job_id}-step{STEPS:06d}" / "model.safetensors"))


def test_job_runs_to_success_with_metrics_samples_checkpoints(api, tmp_path):
    # A stored reward definition, tested on samples first, then used by the job next to an inline one.
    definition = {"name": "digit", "spec": {"type": "regex", "pattern": "[0-9]"}}
    reward = api.post("/v1/rewards", json=definition).raise_for_status().json()
    tried = api.post(f"/v1/rewards/{reward['id']}/test", json={"samples": [{"completion": "7"}, {"completion": "x"}]})
    assert [r["total"] for r in tried.raise_for_status().json()["results"]] == [1.0, 0.0]
    rewards = [{"type": "exact_match", "field": "answer"}, {"type": "ref", "reward_id": reward["id"], "weight": 0.5}]
    job = api.post("/v1/jobs", json=tiny_job(max_steps=6, rewards=rewards)).raise_for_status().json()
    assert job["status"] == "queued"
    done = wait_for(api, job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"]["step"] == 6 and done["started_at"] and done["finished_at"]
    assert done["progress"]["tokens_per_s"] > 0

    metrics = all_metrics(api, job["id"])
    assert sorted(metrics) == [1, 2, 3, 4, 5, 6]
    assert {"reward/mean", "reward/digit/mean", "scorer/reward/digit/latency_p95_s", "loss"} <= set(metrics[6])
    assert done["latest_metrics"] == metrics[6]

    samples = api.get(f"/v1/jobs/{job['id']}/samples", params={"step": 6}).json()["data"]
    assert samples and all(s["prompt"].endswith(":") for s in samples)

    events = api.get(f"/v1/jobs/{job['id']}/events", params={"limit": 1000}).json()["data"]
    statuses = [e["data"]["status"] for e in events if e["type"] == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    assert [e["step"] for e in events if e["type"] == "metrics"] == [1, 2, 3, 4, 5, 6]

    checkpoints = api.get(f"/v1/jobs/{job['id']}/checkpoints").json()["data"]
    assert [c["step"] for c in checkpoints] == [3, 6]
    archive = api.get(f"/v1/jobs/{job['id']}/checkpoints/6/download")
    assert archive.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        tar.extractall(tmp_path, filter="data")
    # The downloaded checkpoint loads with stock transformers, no project code involved.
    model_dir = tmp_path / f"{job['id']}-step000006"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.vocab_size >= len(tokenizer)


def test_cancel_stops_a_running_job_at_a_step_boundary(api):
    job = api.post("/v1/jobs", json=tiny_job(max_steps=500)).raise_for_status().json()
    wait_for(api, job["id"], until={"running"}, min_step=2)
    assert api.post(f"/v1/jobs/{job['id']}/cancel").json()["cancel_requested"] is True
    done = wait_for(api, job["id"])
    assert done["status"] == "cancelled"
    steps = sorted(all_metrics(api, job["id"]))
    assert steps == list(range(1, len(steps) + 1)) and len(steps) < 500


def test_a_bad_model_fails_the_job_with_a_clear_error(api):
    spec = tiny_job()
    spec["model"]["source"] = "no-such-org/no-such-model"
    job = api.post("/v1/jobs", json=spec).raise_for_status().json()
    done = wait_for(api, job["id"])
    assert done["status"] == "failed"
    assert "no-such-org/no-such-model" in done["error"]["message"]


def test_killed_worker_job_resumes_and_matches_an_uninterrupted_run(api, stack, tmp_path):
    spec = tiny_job(max_steps=STEPS, checkpoint={"every": 4, "keep_last": 3})
    reference = api.post("/v1/jobs", json=spec).raise_for_status().json()
    assert wait_for(api, reference["id"])["status"] == "succeeded"
    expected = all_metrics(api, reference["id"])

    job = api.post("/v1/jobs", json=spec).raise_for_status().json()
    wait_for(api, job["id"], until={"running"}, min_step=6)  # past its first checkpoint (step 4)
    os.killpg(stack.worker.pid, signal.SIGKILL)  # the whole worker: main process and pool child
    stack.worker.wait()
    time.sleep(1)
    stack.restart_worker()

    done = wait_for(api, job["id"])
    assert done["status"] == "succeeded", done["error"]
    got = all_metrics(api, job["id"])
    assert sorted(got) == list(range(1, STEPS + 1))  # every step (the API groups rows by step)

    def strip(values: dict[str, float]) -> dict[str, float]:
        return {name: value for name, value in values.items() if not is_wall_clock(name)}

    for step in range(1, STEPS + 1):
        assert strip(got[step]) == strip(expected[step]), f"step {step} differs from the uninterrupted run"
    # Row level, below the API's grouping: every (step, metric) once, every logged sample once.
    assert stored_rows(stack, job["id"]) == stored_rows(stack, reference["id"])
    events = api.get(f"/v1/jobs/{job['id']}/events", params={"limit": 1000}).json()["data"]
    assert any(e["type"] == "resumed" for e in events)
    assert [e["step"] for e in events if e["type"] == "metrics"] == list(range(1, STEPS + 1))  # once each
    # The final model too: bitwise the uninterrupted run's (CPU, same seed and thread count).
    final, uninterrupted = (final_weights(api, job_id, tmp_path / job_id) for job_id in (job["id"], reference["id"]))
    assert final.keys() == uninterrupted.keys()
    assert all(torch.equal(final[name], uninterrupted[name]) for name in final)
    assert [e["data"]["status"] for e in events if e["type"] == "status"] == [
        "queued",
        "running",
        "queued",
        "running",
        "succeeded",
    ]
