"""Multi-device jobs through the real runner: torchrun launches 2 gloo ranks on the CPU.

Slow (each launch starts three Python processes that import torch); one test per behaviour.
"""

import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import Checkpoint, Job, JobEvent, JobMetric
from app.schemas.reward_resource import concrete_rewards
from tests.conftest import tiny_spec
from tests.engine.conftest import RecordingSink
from workers.engine import train
from workers.engine.distributed import World
from workers.rewards import build_reward_fn
from workers.spec import engine_config_from_spec, parse_spec, training_rows

pytestmark = pytest.mark.slow


def two_device_spec(**grpo: object) -> dict[str, object]:
    spec = tiny_spec(max_steps=3, learning_rate=1e-3, **grpo)
    spec["checkpoint"] = {"every": 1, "keep_last": 3}
    spec["resources"] = {"accelerator": "cpu", "devices": 2, "strategy": "ddp"}
    return spec


def one_process_metrics(spec: dict[str, object], data_dir: Path, tmp_path: Path) -> list[dict[str, float]]:
    """The same spec trained by the rank-invariant loop in this process (no process group)."""
    parsed = parse_spec(spec)
    config = engine_config_from_spec(parsed, data_dir=data_dir)
    sink = RecordingSink()
    with build_reward_fn(concrete_rewards(parsed.rewards), group_size=parsed.grpo.group_size) as reward_fn:
        train(config, training_rows(parsed), reward_fn, sink, work_dir=tmp_path / "one", world=World())
    return sink.run_metrics()


def rank_processes(job_id: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "workers.rank_main" in cmdline and job_id in cmdline and "torch.distributed.run" not in cmdline:
                pids.append(int(entry.name))
    return pids


def test_two_device_job_matches_the_one_process_run(client, auth, worker, settings, tmp_path):
    spec = two_device_spec()
    job_id = client.post("/v1/jobs", json=spec, headers=auth).json()["id"]
    job = worker.train(job_id)
    assert job.status == "succeeded", job.error
    rows = client.get(f"/v1/jobs/{job_id}/metrics", headers=auth).json()["data"]
    assert [row["step"] for row in rows] == [1, 2, 3]
    reference = one_process_metrics(spec, settings.data_dir, tmp_path)
    assert any(step["grad_norm"] > 0 for step in reference)
    for row, expected in zip(rows, reference, strict=True):
        values = row["values"]
        assert values["distributed/world_size"] == 2
        for name in ("reward/mean", "loss", "grad_norm", "completion/length_mean"):
            assert values[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-7), name
    checkpoints = client.get(f"/v1/jobs/{job_id}/checkpoints", headers=auth).json()["data"]
    assert [c["step"] for c in checkpoints] == [1, 2, 3]


def test_killing_one_rank_requeues_the_job_which_resumes(client, auth, worker, session_factory):
    spec = two_device_spec()
    spec["grpo"]["max_steps"] = 4
    job_id = client.post("/v1/jobs", json=spec, headers=auth).json()["id"]
    attempt = threading.Thread(target=worker.train, args=(job_id,))
    attempt.start()
    killed = None
    deadline = time.monotonic() + 300
    while attempt.is_alive() and time.monotonic() < deadline and killed is None:
        with session_factory() as session:
            stored = session.scalar(select(Checkpoint.step).where(Checkpoint.job_id == uuid.UUID(job_id)).limit(1))
        ranks = rank_processes(job_id)
        if stored is not None and len(ranks) == 2:  # killed after a checkpoint, to resume from it
            killed = max(ranks)  # either rank; the higher pid is rank 1 in practice
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    attempt.join(timeout=120)
    assert killed is not None and not attempt.is_alive()
    assert rank_processes(job_id) == []  # the launcher tore the group down; nothing is left behind
    with session_factory() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None and job.status == "queued" and job.attempts == 1
        events = session.scalars(select(JobEvent.message).where(JobEvent.job_id == job.id)).all()
        assert any("a rank of the job died" in message for message in events)
    job = worker.train(job_id)  # the next delivery resumes from the latest checkpoint
    assert job.status == "succeeded" and job.attempts == 2
    with session_factory() as session:
        steps = session.scalars(
            select(JobMetric.step).where(JobMetric.job_id == job.id, JobMetric.name == "loss")
        ).all()
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.type == "resumed")).all()
    assert sorted(steps) == [1, 2, 3, 4]  # exactly once each
    assert len(events) == 1 and json.dumps(events[0].data).startswith('{"checkpoint": "checkpoint-')


def test_cancel_reaches_every_rank_at_a_step_boundary(client, auth, worker):
    spec = two_device_spec()
    spec["grpo"]["max_steps"] = 200
    job_id = client.post("/v1/jobs", json=spec, headers=auth).json()["id"]
    attempt = threading.Thread(target=worker.train, args=(job_id,))
    attempt.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if client.get(f"/v1/jobs/{job_id}", headers=auth).json()["progress"]["step"] >= 1:
            break
        time.sleep(0.2)
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=auth).status_code == 200
    attempt.join(timeout=120)
    assert not attempt.is_alive()
    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert job["status"] == "cancelled" and job["progress"]["step"] < 200
    assert rank_processes(job_id) == []  # rank 1 stopped with rank 0: both exited
