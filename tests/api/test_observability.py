"""Prometheus /metrics: request latency, jobs by status, queue depth, step time; multi-process histogram."""

import os
import subprocess
import sys
import textwrap
import uuid

import pytest
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from app.services import runs
from scripts.stack import PROJECT_ROOT
from tests.utils.factories import tiny_spec


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_report_jobs_queue_step_time_and_latency(client, auth, session_factory):
    ids = [uuid.UUID(client.post("/v1/jobs", json=tiny_spec(), headers=auth).json()["id"]) for _ in range(3)]
    client.post(f"/v1/jobs/{ids[2]}/cancel", headers=auth)
    with session_factory() as session:
        runs.claim_job(session=session, job_id=ids[0], worker_id="w1", max_attempts=3)
        for step, seconds in [(1, 0.5), (2, 1.5)]:
            metrics = {"loss": 1.0, "time/step_s": seconds}
            runs.record_step(
                session=session, job_id=ids[0], worker_id="w1", step=step, metrics=metrics, step_seconds=seconds
            )
    values = scrape(client)
    assert values[("grpo_jobs", (("status", "queued"),))] == 1
    assert values[("grpo_jobs", (("status", "running"),))] == 1
    assert values[("grpo_jobs", (("status", "cancelled"),))] == 1
    assert values[("grpo_queue_depth", (("kind", "training"),))] == 1
    assert values[("grpo_training_step_seconds_count", ())] == 2
    assert values[("grpo_training_step_seconds_sum", ())] == 2.0
    assert values[("grpo_job_last_step_seconds", (("job_id", str(ids[0])),))] == 1.5
    submits = (
        "grpo_http_request_duration_seconds_count",
        (("method", "POST"), ("route", "/v1/jobs"), ("status", "201")),
    )
    assert values[submits] == 3
    client.get("/v1/no/such/thing", headers=auth)
    client.get(f"/v1/jobs/{uuid.uuid4()}", headers=auth)
    values = scrape(client)
    unmatched = (
        "grpo_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "<unmatched>"), ("status", "404")),
    )
    by_template = (
        "grpo_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/v1/jobs/{job_id}"), ("status", "404")),
    )
    assert values[unmatched] == 1 and values[by_template] == 1  # ids never become label values


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_metrics_token_when_the_operator_sets_one(client, settings):
    settings.metrics_token = SecretStr("scrape-me")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert scrape(client, Authorization="Bearer scrape-me")


def test_request_histogram_adds_up_across_processes(tmp_path):
    """Under several API processes (PROMETHEUS_MULTIPROC_DIR set) the histogram sums over all of them."""
    observe = textwrap.dedent(
        """
        from app.core.telemetry import Telemetry
        telemetry = Telemetry(session_factory=None)
        for _ in range(3):
            telemetry.observe_request("GET", "/v1/jobs", 200, 0.01)
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(PROJECT_ROOT)}
    for _ in range(2):  # two "worker processes"
        subprocess.run([sys.executable, "-c", observe], env=env, check=True, cwd=PROJECT_ROOT, timeout=60)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    count = registry.get_sample_value(
        "grpo_http_request_duration_seconds_count", {"method": "GET", "route": "/v1/jobs", "status": "200"}
    )
    assert count == 6
