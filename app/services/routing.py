"""Which queue a job goes to, from its `resources` and the operator's worker classes.

Declared classes (GRPO_WORKER_CLASSES, cheapest first): the job goes to `grpo.<class>` of the first
class that fits, and a job that no class fits is a 422 naming `resources`. No classes declared: every job
goes to the default `grpo` queue and the worker that receives one checks it fits what it offers.
"""

import uuid
from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.errors import spec_error
from app.models import Job
from app.schemas.job import JobStatus
from app.schemas.resources import ResourcesSpec, WorkerClass, describe

DEFAULT_QUEUE = "grpo"


def fitting_class(resources: ResourcesSpec, classes: list[WorkerClass]) -> WorkerClass | None:
    return next((worker_class for worker_class in classes if worker_class.fits(resources)), None)


def check_routable(resources: ResourcesSpec, settings: Settings) -> None:
    """422 when the operator declared the fleet and no class of it can ever run the job."""
    if settings.worker_classes and fitting_class(resources, settings.worker_classes) is None:
        offered = "; ".join(
            f"{c.name}: {c.devices} x {c.accelerator}" + (f" ({c.memory_gb:g} GB)" if c.memory_gb else "")
            for c in settings.worker_classes
        )
        raise spec_error("resources", f"no worker class can run {describe(resources)}; this fleet offers {offered}")


def queue_for(resources: ResourcesSpec, settings: Settings) -> str:
    worker_class = fitting_class(resources, settings.worker_classes) if settings.worker_classes else None
    return worker_class.queue if worker_class is not None else DEFAULT_QUEUE


def waiting_message(resources: ResourcesSpec, settings: Settings) -> str:
    """The queued event's text: what the job waits for."""
    return f"job queued on {queue_for(resources, settings)}: waits for a worker with {describe(resources)}"


def training_route(sessions: sessionmaker[Session], settings: Settings) -> Callable[[uuid.UUID], str]:
    """CeleryJobQueue's router: a job id -> its queue (read from the stored spec on every enqueue, so the
    watchdog's and the slot release's enqueues route like the submission did)."""

    def route(job_id: uuid.UUID) -> str:
        with sessions() as session:
            job = session.get(Job, job_id)
            resources = (job.spec or {}).get("resources") if job is not None else None
        return queue_for(ResourcesSpec.model_validate(resources or {}), settings)

    return route


class QueueDepthByClass(Collector):
    """grpo_queue_depth_by_class{queue, worker_class}: queued training jobs per queue, the signal an
    autoscaler reads to add workers of one class. Every declared class is listed (0 when idle)."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self._sessions, self._settings = sessions, settings

    def collect(self) -> Iterator[Metric]:
        with self._sessions() as session:
            queued = session.scalars(select(Job.spec["resources"]).where(Job.status == JobStatus.queued)).all()
        depth: dict[str, int] = {c.queue: 0 for c in self._settings.worker_classes}
        for resources in queued:
            queue = queue_for(ResourcesSpec.model_validate(resources or {}), self._settings)
            depth[queue] = depth.get(queue, 0) + 1
        names = {c.queue: c.name for c in self._settings.worker_classes}
        family = GaugeMetricFamily(
            "grpo_queue_depth_by_class",
            "Queued training jobs per worker-class queue (grpo: no class declared or none needed).",
            labels=["queue", "worker_class"],
        )
        for queue, count in sorted(depth.items()):
            family.add_metric([queue, names.get(queue, "")], count)
        yield family
