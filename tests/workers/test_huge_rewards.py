"""A python reward returning 1e308 through the real runner and sink (issue 14 item 3): it is that call's
error (here scored 0 by the reward's policy), so the step's reward/mean, the metric rows, the
checkpoint's metrics and latest_metrics stay finite, and the job succeeds."""

import math
import uuid

from sqlalchemy import select

from app.models import Checkpoint, Job
from tests.conftest import tiny_spec
from tests.rewards.conftest import requires_root

# The first call in each sandbox process returns 1e308: at least one per step, whatever the completions.
HUGE = (
    "calls = [0]\ndef reward(prompt, completion, row):\n    calls[0] += 1\n    return 1e308 if calls[0] == 1 else 1.0\n"
)


@requires_root
def test_a_reward_of_1e308_never_reaches_metrics_or_checkpoints(client, auth, worker, session_factory):
    spec = tiny_spec(max_steps=1)
    spec["rewards"] = [{"type": "python", "name": "huge", "code": HUGE, "max_error_rate": 1.0}]
    job_id = client.post("/v1/jobs", json=spec, headers=auth).json()["id"]
    job = worker.train(job_id)
    assert job.status == "succeeded", job.error
    with session_factory() as session:
        checkpoint = session.scalar(select(Checkpoint).where(Checkpoint.job_id == uuid.UUID(job_id)))
        latest = session.get(Job, uuid.UUID(job_id)).latest_metrics
    assert checkpoint is not None
    for metrics in (checkpoint.metrics, latest):
        assert math.isfinite(metrics["reward/mean"]) and metrics["reward/mean"] <= 1.0
    assert latest["scorer/reward/huge/errors"] > 0  # the 1e308 calls were counted as errors
