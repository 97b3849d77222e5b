"""Pause and resume with the real runner: pausing checkpoints the step in progress and frees the worker;
the resumed run's metrics equal an uninterrupted run's exactly (CPU); a safeguard can pause a job."""

import uuid

import pytest

from app.core.storage import make_store
from app.models import Checkpoint, Job, JobEvent
from app.schemas.job import JobSpec, JobStatus
from app.services import pause, runs
from tests.utils.api import make_checkpoint_dir
from tests.utils.factories import tiny_spec
from workers.engine.interface import EvalReport, StepReport
from workers.engine.metrics import is_wall_clock
from workers.reporting import MONITORED, DatabaseSink, JobPaused
from workers.rewards import RewardMonitor


def spec() -> dict:
    return tiny_spec(max_steps=5, seed=7) | {"checkpoint": {"every": 4, "keep_last": 3}}


def comparable(client, auth, job_id: str) -> dict[int, dict[str, float]]:
    rows = client.get(f"/v1/jobs/{job_id}/metrics", headers=auth).json()["data"]
    return {row["step"]: {k: v for k, v in row["values"].items() if not is_wall_clock(k)} for row in rows}


def pause_at(monkeypatch, session_factory, job_id: str, step: int) -> None:
    """The user presses pause while `step` runs: the API's call, made just before the step is recorded."""
    real = runs.record_step

    def record_step(**kwargs):
        if kwargs["step"] == step:
            with session_factory() as session:
                pause.pause_job(session=session, job=session.get(Job, uuid.UUID(job_id)))
        return real(**kwargs)

    monkeypatch.setattr("workers.reporting.runs.record_step", record_step)


def test_pause_checkpoints_the_step_frees_the_worker_and_resume_matches_an_uninterrupted_run(
    client, auth, worker, session_factory, monkeypatch, queue
):
    straight = client.post("/v1/jobs", json=spec(), headers=auth).json()["id"]
    assert worker.train(straight).status == JobStatus.succeeded

    job_id = client.post("/v1/jobs", json=spec(), headers=auth).json()["id"]
    pause_at(monkeypatch, session_factory, job_id, step=2)
    paused = worker.train(job_id)  # returns: the worker is free
    monkeypatch.undo()
    assert paused.status == JobStatus.paused and paused.current_step == 2 and paused.worker_id is None
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).json()["progress"]["eta_seconds"] is None
    with session_factory() as session:
        steps = session.query(Checkpoint.step).filter_by(job_id=uuid.UUID(job_id)).all()
        assert [s for (s,) in steps] == [2]  # off the every-4 schedule: written because of the pause
        event = session.query(JobEvent).filter_by(job_id=uuid.UUID(job_id), type="status").all()[-1]
        assert event.data == {"status": "paused", "reason": "requested"} and "after step 2" in event.message

    assert client.post(f"/v1/jobs/{job_id}/resume", headers=auth).json()["status"] == "queued"
    assert queue.enqueued[-1] == uuid.UUID(job_id)
    assert worker.train(job_id).status == JobStatus.succeeded
    assert comparable(client, auth, job_id) == comparable(client, auth, straight)
    events = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}, headers=auth).json()["data"]
    assert [e["data"]["status"] for e in events if e["type"] == "status"] == [
        "queued", "running", "pausing", "paused", "queued", "running", "succeeded",
    ]  # fmt: skip
    assert [e["data"]["checkpoint"] for e in events if e["type"] == "resumed"] == ["checkpoint-000002"]


def test_pause_requested_during_the_last_step_just_finishes(client, auth, worker, session_factory, monkeypatch):
    job_id = client.post("/v1/jobs", json=tiny_spec(max_steps=2), headers=auth).json()["id"]
    pause_at(monkeypatch, session_factory, job_id, step=2)
    assert worker.train(job_id).status == JobStatus.succeeded


def test_a_safeguard_with_on_alert_pause_pauses_with_the_alert_in_the_event(session_factory, settings):
    job_spec = JobSpec.model_validate(
        tiny_spec() | {"safeguards": {"window": 2, "eval_window": 2, "reward_rise": 0.1, "on_alert": "pause"}}
    )
    from tests.services.test_job_lifecycle import make_job

    with session_factory() as session:
        job_id = make_job(session)
        runs.claim_job(session=session, job_id=job_id, worker_id="w1", max_attempts=3)
    sink = DatabaseSink(
        session_factory, make_store(settings), job_id, "w1", job_spec, RewardMonitor(job_spec.safeguards, MONITORED)
    )
    sink.on_eval(EvalReport(step=0, metrics={"eval/accuracy": 0.5}, num_prompts=4, samples_per_prompt=1))
    for step in range(1, 5):
        sink.on_step(StepReport(step=step, metrics={"reward/mean": 0.2 * step}, samples=[]))
    with pytest.raises(JobPaused, match="paused by a reward-hacking safeguard") as raised:
        sink.on_eval(EvalReport(step=4, metrics={"eval/accuracy": 0.3}, num_prompts=4, samples_per_prompt=1))
    assert raised.value.reason == "safeguard" and raised.value.data["alert"]["code"] == "reward_eval_divergence"
    with session_factory() as session:
        assert pause.settle_paused(
            session=session, job_id=job_id, worker_id="w1", reason="safeguard", message=str(raised.value),
            data=raised.value.data,
        )  # fmt: skip
        event = session.query(JobEvent).filter_by(job_id=job_id, type="status").all()[-1]
        assert event.data["status"] == "paused" and event.data["alert"]["code"] == "reward_eval_divergence"


def test_a_multi_rank_sink_asks_for_a_checkpoint_and_pauses_from_it(session_factory, settings, tmp_path):
    """Ranks checkpoint together: a pause of a multi-device job is a checkpoint request, raised after it."""
    job_spec = JobSpec.model_validate(tiny_spec(max_steps=5))
    from tests.services.test_job_lifecycle import make_job

    with session_factory() as session:
        job_id = make_job(session)
        runs.claim_job(session=session, job_id=job_id, worker_id="w1", max_attempts=3)
    sink = DatabaseSink(
        session_factory, make_store(settings), job_id, "w1", job_spec,
        RewardMonitor(job_spec.safeguards, MONITORED), pause_at_checkpoint=True,
    )  # fmt: skip
    sink.on_step(StepReport(step=1, metrics={"reward/mean": 0.1}, samples=[]))
    assert not sink.checkpoint_requested()
    with session_factory() as session:
        pause.pause_job(session=session, job=session.get(Job, job_id))
    sink.on_step(StepReport(step=2, metrics={"reward/mean": 0.2}, samples=[]))  # no raise: ranks go on together
    assert sink.checkpoint_requested()
    checkpoint = tmp_path / "checkpoint-000002"
    make_checkpoint_dir(checkpoint, "2")
    with pytest.raises(JobPaused, match="paused by the user after step 2"):
        sink.on_checkpoint(2, checkpoint)
