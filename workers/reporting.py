"""The engine's sink for service jobs: step metrics, events and checkpoints go to the database.

Also the cooperative stop: on_step raises JobCancelled or JobLost between steps, never mid-step.
"""

import dataclasses
import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.core.storage import ObjectStore
from app.schemas.job import JobSpec
from app.schemas.status import EventType
from app.services import artifacts, budgets, runs
from workers.contract import JobFailure
from workers.drain import WorkerDraining, is_draining
from workers.engine.interface import CheckpointThenStop, EvalReport, StepReport
from workers.manifest import write_manifest
from workers.rewards import Alert, RewardMonitor
from workers.rewards.monitor import MetricNames

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    """The user asked to cancel; raised from the sink at a step boundary."""


class JobLost(Exception):
    """This worker no longer owns the job (it was requeued while this worker was stalled)."""


class JobPaused(CheckpointThenStop):
    """Stop after checkpointing this step and leave the job paused: asked for, or decided here (a
    safeguard with on_alert='pause'). `reason` and `data` go into the status event."""

    def __init__(self, message: str, *, reason: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.data = data or {}


class SafeguardStop(JobFailure):
    """A reward-hacking alert fired and the job's safeguards say to stop."""

    code = "safeguard_stop"
    param = "safeguards.on_alert"


# The engine prefixes the scorer's own metrics with "scorer/".
MONITORED = MetricNames(
    length="scorer/hacking/completion_chars_mean",
    repetition="scorer/hacking/repetition_mean",
    identical="scorer/hacking/identical_in_group_frac",
    zero_std="scorer/hacking/zero_std_group_frac",
)


class DatabaseSink:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        store: ObjectStore,
        job_id: uuid.UUID,
        worker_id: str,
        spec: JobSpec,
        monitor: RewardMonitor,
        manifest: dict[str, Any] | None = None,
        drain_flags: list[Path] | None = None,
        pause_at_checkpoint: bool = False,
    ) -> None:
        self._drain_flags = drain_flags or []
        # A multi-rank job's ranks checkpoint together: a pause is then asked for as a checkpoint (like a
        # drain) and raised from on_checkpoint, instead of from on_step (workers/engine/parallel.py).
        self._pause_at_checkpoint = pause_at_checkpoint
        self._pending_pause: JobPaused | None = None
        self._sessions = session_factory
        self._store = store
        self._job_id = job_id
        self._worker_id = worker_id
        self._spec = spec
        self._monitor = monitor
        self._last_metrics: dict[str, float] = {}
        self._manifest = manifest  # workers/manifest.py: written into every checkpoint

    def _raise_alerts(self, alerts: list[Alert]) -> None:
        if not alerts:
            return
        with self._sessions() as session:
            for alert in alerts:
                runs.record_alert(
                    session=session,
                    job_id=self._job_id,
                    code=alert.code,
                    message=alert.message,
                    step=alert.step,
                    data=dict(alert.data),
                )
        if self._monitor.stop_requested:
            raise SafeguardStop(f"stopped by a reward-hacking safeguard: {alerts[0].message}")
        if self._spec.safeguards.on_alert == "pause":  # for a person to look; resume continues
            first = alerts[0]
            self._pause(
                JobPaused(
                    f"paused by a reward-hacking safeguard: {first.message}",
                    reason="safeguard",
                    data={"alert": {"code": first.code, "message": first.message, "step": first.step}},
                )
            )

    def _pause(self, pause: JobPaused) -> None:
        if not self._pause_at_checkpoint:
            raise pause
        self._pending_pause = self._pending_pause or pause

    def on_model_loaded(self, seconds: float) -> None:
        with self._sessions() as session:
            runs.add_event(
                session=session,
                job_id=self._job_id,
                type_=EventType.model_loaded,
                message=f"model loaded in {seconds:.1f} s",
                data={"seconds": round(seconds, 3)},
            )

    def on_step(self, report: StepReport) -> None:
        self._last_metrics = report.metrics
        samples = [dataclasses.asdict(sample) for sample in report.samples]
        with self._sessions() as session:
            outcome = runs.record_step(
                session=session,
                job_id=self._job_id,
                worker_id=self._worker_id,
                step=report.step,
                metrics=report.metrics,
                step_seconds=report.metrics.get("time/step_s", 0.0),
                samples=samples,
            )
            crossing = None
            if outcome != runs.StepOutcome.lost:  # the step ran: its cost counts, whatever happens next
                budgets.record_usage(
                    session=session, job_id=self._job_id, worker_id=self._worker_id, metrics=report.metrics
                )
                crossing = budgets.crossed(session=session, job_id=self._job_id)
        if outcome == runs.StepOutcome.cancel:
            raise JobCancelled(f"cancelled by the user after step {report.step}")
        if outcome == runs.StepOutcome.lost:
            raise JobLost(f"worker {self._worker_id} no longer owns job {self._job_id}")
        last = report.step >= self._spec.grpo.max_steps  # a pause or a budget has nothing left to stop
        if outcome == runs.StepOutcome.pause and not last:
            self._pause(JobPaused(f"paused by the user after step {report.step}", reason="requested"))
        if crossing is not None and not last:
            self._pause(JobPaused(f"paused: {crossing.message}", reason="budget", data=crossing.data()))
        self._raise_alerts(self._monitor.observe_step(report.step, report.metrics))

    def checkpoint_requested(self) -> bool:
        """The engine checkpoints after this step when the worker drains (SIGTERM, workers/drain.py), or
        when a multi-rank job is to pause."""
        return is_draining(self._drain_flags) or self._pending_pause is not None

    def on_checkpoint(self, step: int, path: Path) -> None:
        if self._manifest is not None:
            write_manifest(path, self._manifest, step)
        with self._sessions() as session:
            artifacts.register_checkpoint(
                session=session,
                store=self._store,
                job_id=self._job_id,
                step=step,
                local_dir=path,
                metrics=self._last_metrics,
            )
            artifacts.apply_retention(
                session=session,
                store=self._store,
                job_id=self._job_id,
                keep_last=self._spec.checkpoint.keep_last,
                keep_best=self._spec.checkpoint.keep_best,
            )
        if self._pending_pause is not None:
            raise self._pending_pause
        if is_draining(self._drain_flags):
            raise WorkerDraining(f"worker draining: stopped after step {step} and its checkpoint")

    def on_eval(self, report: EvalReport) -> None:
        config = self._spec.eval.model_dump(mode="json", exclude={"dataset"}) if self._spec.eval else {}
        with self._sessions() as session:
            artifacts.record_scheduled_evaluation(
                session=session, job_id=self._job_id, step=report.step, metrics=report.metrics, config=config
            )
        self._raise_alerts(self._monitor.observe_eval(report.step, report.metrics))


class Heartbeat:
    """Calls `beat` from a background thread every interval, so a long step (a slow generation on a big
    model) or a long evaluation does not look like a dead worker to the watchdog."""

    def __init__(self, beat: Callable[[], None], interval_s: float, name: str) -> None:
        self._beat = beat
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{name}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._beat()
            except Exception:  # a missed beat is not fatal; the next one may succeed
                logger.warning("heartbeat %s failed", self._thread.name, exc_info=True)
