"""A job trains end to end on the embedded default with a judge reward served by the stack's own
inference worker (the tiny model judges; the point is the wiring, not the judgement)."""

from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import shared_stack
from tests.integration.helpers import all_metrics, tiny_job, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_job_trains_with_a_judge_reward(tmp_path: Path) -> None:
    judge = {
        "type": "judge_label",
        "name": "judge",
        "judge": {"model": "tiny-demo", "max_tokens": 1},
        "prompt": "{{prompt}}{{completion}}",
        "labels": list("0123456789"),
        "passing": ["1", "3", "5", "7", "9"],
        "on_error": "score",
        "max_error_rate": 1.0,  # a random judge may answer something that is not a label
    }
    with shared_stack(tmp_path / "data", worker=True) as (stack, key):
        with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
            spec = tiny_job(max_steps=2, rewards=[judge])
            job = api.post("/v1/jobs", json=spec).raise_for_status().json()
            done = wait_for(api, job["id"], until={"succeeded"})
            assert done["progress"]["step"] == 2
            metrics = all_metrics(api, job["id"])
            # 2 prompts x 4 completions per step: every distinct question was a judge call or a cache hit
            for step in (1, 2):
                values = metrics[step]
                assert values["scorer/reward/judge/judge_calls"] + values["scorer/reward/judge/judge_cache_hits"] >= 1
                assert values["scorer/reward/judge/judge_prompt_tokens"] >= values["scorer/reward/judge/judge_calls"]
            # the judge's tokens are inference tokens of the stack's worker: its stats saw the batches
            stats = httpx.get(f"{stack.env['GRPO_INFERENCE_URL']}/stats").json()
            assert stats["requests"] >= metrics[1]["scorer/reward/judge/judge_calls"]
