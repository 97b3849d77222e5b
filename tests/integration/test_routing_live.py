"""Two real workers of different classes: a job routed to one class's queue never runs on the other."""

import json

import httpx
import pytest

from scripts.stack import admin, running_stack, start_worker, stop, wait_worker_ready
from tests.integration.helpers import tiny_job, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLASSES = [
    {"name": "small", "accelerator": "cpu", "devices": 1},
    {"name": "large", "accelerator": "cpu", "devices": 1, "memory_gb": 64},
]


def test_a_job_waits_for_its_class_and_runs_there(tmp_path):
    env = {"GRPO_WORKER_CLASSES": json.dumps(CLASSES), "GRPO_WORKER_CLASS": "small"}
    with running_stack(tmp_path / "data", extra_env=env) as stack:
        key = admin(stack.env, "create-key", "--tenant", "routing")
        with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
            large = api.post("/v1/jobs", json=tiny_job(2, resources={"memory_gb": 32})).raise_for_status().json()
            small = api.post("/v1/jobs", json=tiny_job(2)).raise_for_status().json()
            assert wait_for(api, small["id"])["status"] == "succeeded"  # the small worker is up and consuming
            waiting = api.get(f"/v1/jobs/{large['id']}").raise_for_status().json()
            assert waiting["status"] == "queued"  # submitted first, yet never taken by the small worker
            metrics = api.get("/metrics").text
            assert 'grpo_queue_depth_by_class{queue="grpo.large",worker_class="large"} 1.0' in metrics

            log_dir = tmp_path / "large-logs"
            log_dir.mkdir()
            worker = start_worker({**stack.env, "GRPO_WORKER_CLASS": "large"}, log_dir)
            try:
                wait_worker_ready(worker, log_dir)
                assert wait_for(api, large["id"])["status"] == "succeeded"
            finally:
                stop(worker)
