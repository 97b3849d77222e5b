"""A task redelivered after its worker was killed takes the job over at once, safely (issue 14 item 8).

Before, the redelivery was refused ("not claimed: not queued") and the job waited for the watchdog's
heartbeat timeout. Now: a known-dead owner (a gone process of this machine) is replaced at once, a silent
one after settings.takeover_after_s, a live one never; every hand-over is fenced (one winner).
"""

import socket
import uuid
from datetime import timedelta

from app.models import Job, JobEvent
from app.models.base import utcnow
from app.schemas.job import JobStatus
from app.services import runs
from tests.utils.factories import RecordingQueue, dead_worker_id, make_job
from workers import liveness
from workers.claiming import claim_or_take_over
from workers.watchdog import sweep_once


def running_job(session_factory, owner: str, heartbeat_age_s: float = 0.0) -> uuid.UUID:
    with session_factory() as session:
        job_id = make_job(session)
        runs.claim_job(session=session, job_id=job_id, worker_id=owner, max_attempts=3)
        beat = utcnow() - timedelta(seconds=heartbeat_age_s)
        session.execute(Job.__table__.update().where(Job.id == job_id).values(heartbeat_at=beat))
        session.commit()
    return job_id


def no_sleep(_seconds: float) -> None:
    raise AssertionError("took its time: the takeover should have been immediate")


def test_liveness_knows_a_gone_process_of_this_machine_and_nothing_else():
    assert not liveness.known_dead(liveness.new_worker_id())  # this very process
    assert liveness.known_dead(dead_worker_id())
    alive = liveness.new_worker_id()
    head, _, key = alive.rpartition("@")
    boot, namespace, started = key.split(".")
    assert liveness.known_dead(f"{head}@{boot}.{namespace}.{int(started) + 1}")  # the pid was reused since
    assert not liveness.known_dead(f"{head}@{boot}.1.{started}")  # another pid namespace (container)
    assert not liveness.known_dead(f"another-host:{head.split(':', 1)[1]}@{key}")
    assert not liveness.known_dead("w1") and not liveness.known_dead(None)  # ids that say nothing


def test_a_redelivered_task_takes_over_a_job_whose_worker_process_is_gone_at_once(session_factory, settings):
    lost_owner = dead_worker_id()
    job_id = running_job(session_factory, lost_owner)  # its heartbeat is fresh: the kill was just now

    job = claim_or_take_over(
        session_factory=session_factory, job_id=job_id, worker_id="w2", settings=settings, sleep=no_sleep
    )

    assert job is not None and job.status == JobStatus.running and job.worker_id == "w2" and job.attempts == 2
    with session_factory() as session:
        events = session.query(JobEvent).filter_by(job_id=job_id, type="status").order_by(JobEvent.id).all()
        assert [e.data["status"] for e in events] == ["running", "queued", "running"]
        assert f"worker {lost_owner} is gone" in events[1].message
        # The old owner is fenced off: were it still alive after all, it could neither write nor finish.
        outcome = runs.record_step(
            session=session, job_id=job_id, worker_id=lost_owner, step=1, metrics={}, step_seconds=1.0
        )
        assert outcome == "lost"
        assert not runs.finish_job(session=session, job_id=job_id, worker_id=lost_owner, to=JobStatus.succeeded)


def test_a_silent_owner_elsewhere_is_taken_over_after_three_missed_beats(session_factory, settings):
    assert settings.takeover_after_s == 3 * settings.heartbeat_interval_s
    job_id = running_job(session_factory, "other-host:1:abc", heartbeat_age_s=settings.takeover_after_s + 1)
    job = claim_or_take_over(
        session_factory=session_factory, job_id=job_id, worker_id="w2", settings=settings, sleep=no_sleep
    )
    assert job is not None and job.worker_id == "w2"

    # A fresh heartbeat that then stops: the task watches it go stale, then takes over.
    job_id = running_job(session_factory, "other-host:2:abc")
    clock = {"offset": 0.0}

    def wait(seconds: float) -> None:
        clock["offset"] += seconds

    job = claim_or_take_over(
        session_factory=session_factory,
        job_id=job_id,
        worker_id="w3",
        settings=settings,
        sleep=wait,
        now=lambda: utcnow() + timedelta(seconds=clock["offset"]),
    )
    assert job is not None and job.worker_id == "w3"
    assert settings.takeover_after_s <= clock["offset"] <= settings.takeover_after_s + settings.heartbeat_interval_s


def test_a_live_but_slow_owner_keeps_its_job(session_factory, settings):
    owner = liveness.new_worker_id()  # alive: this process
    job_id = running_job(session_factory, owner, heartbeat_age_s=settings.takeover_after_s - 5)
    beats = []

    def owner_beats_meanwhile(_seconds: float) -> None:
        with session_factory() as session:
            runs.beat(session=session, job_id=job_id, worker_id=owner)
        beats.append(1)

    job = claim_or_take_over(
        session_factory=session_factory, job_id=job_id, worker_id="w2", settings=settings, sleep=owner_beats_meanwhile
    )
    assert job is None and beats == [1]  # one beat seen: a duplicate delivery, gone after one interval
    with session_factory() as session:
        kept = session.get(Job, job_id)
        assert kept.worker_id == owner and kept.attempts == 1 and kept.status == JobStatus.running


def test_only_one_of_two_racing_takeovers_wins(session_factory):
    job_id = running_job(session_factory, dead_worker_id())
    with session_factory() as first, session_factory() as second:
        seen_by_first, seen_by_second = first.get(Job, job_id), second.get(Job, job_id)
        won = runs.take_over_job(session=first, seen=seen_by_first, worker_id="w2", max_attempts=3, reason="gone")
        lost = runs.take_over_job(session=second, seen=seen_by_second, worker_id="w3", max_attempts=3, reason="gone")
    assert won is not None and lost is None
    with session_factory() as session:
        job = session.get(Job, job_id)
        assert job.worker_id == "w2" and job.attempts == 2


def test_the_watchdog_requeues_a_job_of_a_gone_local_worker_without_waiting_for_the_timeout(session_factory, settings):
    queue = RecordingQueue()
    gone = running_job(session_factory, dead_worker_id())
    alive = running_job(session_factory, liveness.new_worker_id())
    elsewhere = running_job(session_factory, f"{socket.gethostname()}x:1:abc")
    assert sweep_once(session_factory=session_factory, queue=queue, settings=settings) == 1
    assert queue.enqueued == [gone]
    with session_factory() as session:
        assert session.get(Job, gone).status == JobStatus.queued
        assert {session.get(Job, j).status for j in (alive, elsewhere)} == {JobStatus.running}
