"""The watchdog's sweep (lost workers of jobs and of evaluations) and the sink's safeguard wiring."""

import uuid
from datetime import timedelta

import pytest

from app.core.storage import make_store
from app.models import Evaluation, Job, JobEvent
from app.models.base import utcnow
from app.schemas.job import JobSpec, JobStatus
from app.services import runs
from tests.utils.factories import RecordingQueue, make_job, tiny_spec
from workers.engine.interface import EvalReport, StepReport
from workers.reporting import MONITORED, DatabaseSink, SafeguardStop
from workers.rewards import RewardMonitor
from workers.watchdog import sweep_once


def test_sweep_requeues_a_job_whose_worker_vanished_and_fails_a_lost_evaluation(session_factory, settings):
    queue = RecordingQueue()
    with session_factory() as session:
        lost, alive = make_job(session), make_job(session)
        for job_id, worker in ((lost, "w1"), (alive, "w2")):
            runs.claim_job(session=session, job_id=job_id, worker_id=worker, max_attempts=3)
        evaluation = Evaluation(job_id=alive, step=5, trigger="on_demand", status="running", config={}, metrics={})
        session.add(evaluation)
        session.commit()
        evaluation_id = evaluation.id
        an_hour_ago = utcnow() - timedelta(hours=1)
        session.execute(Job.__table__.update().where(Job.id == lost).values(heartbeat_at=an_hour_ago))
        session.execute(Evaluation.__table__.update().values(heartbeat_at=an_hour_ago))
        session.commit()

    assert sweep_once(session_factory=session_factory, queue=queue, settings=settings) == 2
    assert queue.enqueued == [lost]  # sent again, to resume from its latest checkpoint
    with session_factory() as session:
        assert session.get(Job, lost).status == JobStatus.queued
        assert session.get(Job, alive).status == JobStatus.running
        evaluation = session.get(Evaluation, evaluation_id)
        assert evaluation.status == "failed" and evaluation.error["code"] == "worker_lost"
        assert "request the evaluation again" in evaluation.error["message"]
        requeued = session.query(JobEvent).filter_by(job_id=lost, type="status").all()[-1]
        assert "no heartbeat from worker w1" in requeued.message
    assert sweep_once(session_factory=session_factory, queue=queue, settings=settings) == 0  # nothing stale left


def _sink(session_factory, settings, on_alert: str) -> tuple[DatabaseSink, uuid.UUID]:
    spec = JobSpec.model_validate(
        tiny_spec() | {"safeguards": {"window": 2, "eval_window": 2, "reward_rise": 0.1, "on_alert": on_alert}}
    )
    with session_factory() as session:
        job_id = make_job(session)
        runs.claim_job(session=session, job_id=job_id, worker_id="w1", max_attempts=3)
    monitor = RewardMonitor(spec.safeguards, MONITORED)
    return DatabaseSink(session_factory, make_store(settings), job_id, "w1", spec, monitor), job_id


@pytest.mark.parametrize("on_alert", ["record", "stop"])
def test_train_reward_up_while_held_out_accuracy_down_alerts_on_the_job(session_factory, settings, on_alert):
    sink, job_id = _sink(session_factory, settings, on_alert)
    sink.on_eval(EvalReport(step=0, metrics={"eval/accuracy": 0.5}, num_prompts=4, samples_per_prompt=1))
    for step in range(1, 5):
        sink.on_step(StepReport(step=step, metrics={"reward/mean": 0.2 * step}, samples=[]))
    falling = EvalReport(step=4, metrics={"eval/accuracy": 0.3}, num_prompts=4, samples_per_prompt=1)
    if on_alert == "stop":
        with pytest.raises(SafeguardStop, match="held-out accuracy fell from 0.500 to 0.300"):
            sink.on_eval(falling)
    else:
        sink.on_eval(falling)
    with session_factory() as session:
        job = session.get(Job, job_id)
        assert [(a["code"], a["step"]) for a in job.alerts] == [("reward_eval_divergence", 4)]
        [event] = session.query(JobEvent).filter_by(job_id=job_id, type="alert").all()
        assert event.level == "warning" and event.data["code"] == "reward_eval_divergence"
