"""`grpo jobs submit --wait` and `grpo jobs logs --follow` show what the demo shows: step, reward, KL, loss
and tokens/s (not the first metrics in alphabetical order, nor 'step 17' with no values)."""

import uuid
from datetime import UTC, datetime

from grpo_client.cli import _event_line, _progress
from grpo_client.models import Event, Job

METRICS = {
    "advantage/abs_mean": 0.5,
    "advantage/mean": -3.9e-09,
    "reward/mean": 0.6021,
    "kl": 1.29,
    "loss": 0.0416,
    "throughput/tokens_per_s": 2340.4,
}


def test_wait_progress_shows_step_reward_kl_loss_and_tokens_per_second() -> None:
    job = Job(
        id=uuid.uuid4(),
        name="j",
        status="running",
        progress={"step": 145, "total_steps": 400, "fraction": 0.36},
        created_at=datetime.now(UTC),
        latest_metrics=METRICS,
    )
    assert _progress(job) == "running step 145/400  reward 0.602  kl 1.290  loss +0.0416  tok/s 2340"


def test_a_metrics_event_line_carries_the_values() -> None:
    event = Event(
        id=1,
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        step=17,
        level="info",
        type="metrics",
        message="step 17",
        data={"step": 17, "values": METRICS},
    )
    assert _event_line(event) == (
        "2026-01-02 03:04:05 info    metrics step 17: reward 0.602  kl 1.290  loss +0.0416  tok/s 2340"
    )
    other = event.model_copy(update={"type": "status", "message": "running", "data": {}})
    assert _event_line(other).endswith("status step 17: running")
