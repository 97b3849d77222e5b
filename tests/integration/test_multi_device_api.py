"""Through the API with real processes: a job with resources.devices = 2 runs on two torchrun ranks under the
Celery worker and trains the update the one-process run of the same spec computes."""

import pytest

from app.schemas.reward_resource import concrete_rewards
from tests.engine.conftest import RecordingSink
from tests.integration.helpers import all_metrics, tiny_job, wait_for
from workers.engine import train
from workers.engine.distributed import World
from workers.rewards import build_reward_fn
from workers.spec import engine_config_from_spec, parse_spec, training_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]
STEPS = 4


def test_two_device_job_through_the_api_matches_one_process(api, tmp_path):
    spec = tiny_job(STEPS, resources={"accelerator": "cpu", "devices": 2, "strategy": "fsdp"})
    spec["rewards"] = [{"type": "regex", "pattern": "[0-9]"}]  # fires often on the random model: a signal
    job_id = api.post("/v1/jobs", json=spec).raise_for_status().json()["id"]
    job = wait_for(api, job_id, until={"succeeded"}, timeout_s=400)
    assert job["progress"]["step"] == STEPS
    served = all_metrics(api, job_id)
    parsed = parse_spec(spec)
    sink = RecordingSink()
    with build_reward_fn(concrete_rewards(parsed.rewards), group_size=parsed.grpo.group_size) as reward_fn:
        config = engine_config_from_spec(parsed, data_dir=tmp_path)
        train(config, training_rows(parsed), reward_fn, sink, work_dir=tmp_path / "one", world=World())
    reference = sink.run_metrics()
    assert any(step["grad_norm"] > 0 for step in reference)
    assert sorted(served) == list(range(1, STEPS + 1))
    for step, expected in enumerate(reference, start=1):
        assert served[step]["distributed/world_size"] == 2
        for name in ("reward/mean", "completion/length_mean", "loss", "grad_norm"):
            assert served[step][name] == pytest.approx(expected[name], rel=1e-5, abs=1e-7), (step, name)
