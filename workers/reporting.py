"""The engine's sink for service jobs: step metrics, events and checkpoints go to the database.

Also the cooperative stop: on_step raises JobCancelled or JobLost between steps, never mid-step.
"""

import logging
import threading
import uuid
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.services import runs
from workers.engine.interface import EvalReport, StepReport

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    """The user asked to cancel; raised from the sink at a step boundary."""


class JobLost(Exception):
    """This worker no longer owns the job (it was requeued while this worker was stalled)."""


class DatabaseSink:
    def __init__(self, session_factory: sessionmaker[Session], job_id: uuid.UUID, worker_id: str) -> None:
        self._sessions = session_factory
        self._job_id = job_id
        self._worker_id = worker_id

    def on_step(self, report: StepReport) -> None:
        with self._sessions() as session:
            outcome = runs.record_step(
                session=session,
                job_id=self._job_id,
                worker_id=self._worker_id,
                step=report.step,
                metrics=report.metrics,
                step_seconds=report.metrics.get("time/step_s", 0.0),
            )
        if outcome == "cancel":
            raise JobCancelled(f"cancelled by the user after step {report.step}")
        if outcome == "lost":
            raise JobLost(f"worker {self._worker_id} no longer owns job {self._job_id}")

    def on_checkpoint(self, step: int, path: Path) -> None:
        with self._sessions() as session:
            runs.add_event(
                session=session,
                job_id=self._job_id,
                type_="checkpoint",
                message=f"checkpoint saved at step {step}",
                data={"step": step, "path": str(path)},
            )

    def on_eval(self, report: EvalReport) -> None:
        with self._sessions() as session:
            runs.add_event(
                session=session,
                job_id=self._job_id,
                type_="evaluation",
                message=f"evaluation at step {report.step}",
                data={"step": report.step, **report.metrics},
            )


class Heartbeat:
    """Writes the job's heartbeat from a background thread, so a long step (a slow generation on a big
    model) does not look like a dead worker to the watchdog."""

    def __init__(
        self, session_factory: sessionmaker[Session], job_id: uuid.UUID, worker_id: str, interval_s: float
    ) -> None:
        self._sessions, self._job_id, self._worker_id = session_factory, job_id, worker_id
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                with self._sessions() as session:
                    runs.beat(session=session, job_id=self._job_id, worker_id=self._worker_id)
            except Exception:  # a missed beat is not fatal; the next one may succeed
                logger.warning("heartbeat for job %s failed", self._job_id, exc_info=True)
