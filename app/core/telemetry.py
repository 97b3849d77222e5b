"""Prometheus metrics: request latency measured in the API process, job state read from the database.

Multi-process correctness:
- Request latency is per process. Under several uvicorn/gunicorn worker processes set
  PROMETHEUS_MULTIPROC_DIR (an empty directory shared by them, wiped at deploy): the histogram then
  lives in memory-mapped files and every process's /metrics reports the sum over all of them.
- Job counts, queue depth and training step time are not counted in any process: they are read from
  the database at scrape time (the workers write step times there anyway), so they are exact
  whichever process is scraped and survive restarts. Several API replicas report the same values:
  aggregate them with max(), not sum().
"""

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.metrics_core import GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.models import Evaluation, Job
from app.schemas.job import JobStatus

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE = "<unmatched>"  # unknown paths share one label, so scanners cannot blow up cardinality


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


class DatabaseCollector(Collector):
    """Jobs by status, queue depth and step time, computed from the database on every scrape."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    def collect(self) -> Iterator[Metric]:
        with self._sessions() as session:
            by_status = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
            waiting = session.scalar(
                select(func.count()).where(Job.status == JobStatus.queued, Job.deferred_at.is_not(None))
            )
            queued_evaluations = session.scalar(select(func.count()).where(Evaluation.status == "queued"))
            steps, seconds = session.execute(
                select(func.coalesce(func.sum(Job.steps_recorded), 0), func.coalesce(func.sum(Job.train_seconds), 0.0))
            ).one()
            running = session.execute(select(Job.id, Job.latest_metrics).where(Job.status == JobStatus.running)).all()
        yield from _job_families(by_status, waiting or 0, queued_evaluations or 0)
        step_time = SummaryMetricFamily(
            "grpo_training_step_seconds",
            "Wall time of training steps, all jobs (rate(_sum) / rate(_count) is the mean step time).",
            count_value=int(steps),
            sum_value=float(seconds),
        )
        yield step_time
        last = GaugeMetricFamily(
            "grpo_job_last_step_seconds", "Duration of the latest step of each running job.", labels=["job_id"]
        )
        for job_id, metrics in running:
            if isinstance(metrics, dict) and "time/step_s" in metrics:
                last.add_metric([str(job_id)], float(metrics["time/step_s"]))
        yield last


def _job_families(by_status: dict[Any, int], waiting: int, queued_evaluations: int) -> Iterator[Metric]:
    jobs = GaugeMetricFamily("grpo_jobs", "Jobs by status.", labels=["status"])
    for status in JobStatus:
        jobs.add_metric([status.value], by_status.get(status, 0))
    yield jobs
    depth = GaugeMetricFamily(
        "grpo_queue_depth", "Work waiting for a worker: queued training jobs and evaluations.", labels=["kind"]
    )
    depth.add_metric(["training"], by_status.get(JobStatus.queued, 0))
    depth.add_metric(["evaluation"], queued_evaluations)
    yield depth
    yield GaugeMetricFamily(
        "grpo_jobs_waiting_for_slot",
        "Queued jobs held back because their tenant runs its maximum of concurrent jobs.",
        value=waiting,
    )


class Telemetry:
    """One per app: the request histogram and how to render the exposition."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._multiprocess = multiprocess_dir() is not None
        self._registry = CollectorRegistry()
        self._database = DatabaseCollector(session_factory)
        self._extra: list[Collector] = []
        self.request_seconds = Histogram(
            "grpo_http_request_duration_seconds",
            "API request latency by route template, method and status code.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            # In multi-process mode values live in the shared files and are collected from there.
            registry=None if self._multiprocess else self._registry,
        )
        if not self._multiprocess:
            self._registry.register(self._database)

    def add_collector(self, collector: Collector) -> None:
        """A further scrape-time collector (e.g. queue depth per worker class, app/services/routing.py)."""
        self._extra.append(collector)
        if not self._multiprocess:
            self._registry.register(collector)

    def observe_request(self, method: str, route: str | None, status: int, seconds: float) -> None:
        self.request_seconds.labels(method, route or UNMATCHED_ROUTE, str(status)).observe(seconds)

    def render(self) -> bytes:
        if not self._multiprocess:
            return generate_latest(self._registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
        registry.register(self._database)
        for collector in self._extra:
            registry.register(collector)
        return generate_latest(registry)
