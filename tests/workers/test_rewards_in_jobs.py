"""Rewards in jobs through the real runner: a stored python reward trains; a failing one fails the job with a
named, counted error; a length reward in tokens gets the tokenizer; alerts land on the job and can stop it."""

import pytest

from tests.utils.factories import tiny_spec
from tests.utils.rewards import requires_root

JUDGE = """
def reward(prompt, completion, row):
    if row.get('judge') == 'down':
        raise ValueError('judge is down')
    return float(len(completion) % 3) / 2
"""


def stored_reward(client, auth, name, code):
    body = {
        "name": name,
        "spec": {"type": "python", "code": code},
        "validation_sample": {"completion": "abc", "row": {"judge": "up"}},
    }
    response = client.post("/v1/rewards", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@requires_root
def test_stored_python_reward_trains_and_a_failing_one_fails_the_job_naming_it(client, auth, worker):
    reward_id = stored_reward(client, auth, "judge", JUDGE)
    spec = tiny_spec(max_steps=2)
    spec["rewards"] = [{"type": "ref", "reward_id": reward_id}]
    good = client.post("/v1/jobs", json=spec, headers=auth).json()["id"]
    assert worker.train(good).status == "succeeded"
    metrics = client.get(f"/v1/jobs/{good}/metrics", headers=auth).json()["data"]
    assert [row["step"] for row in metrics] == [1, 2]
    assert {"reward/judge/mean", "scorer/reward/judge/latency_p95_s", "scorer/reward/judge/errors"} <= set(
        metrics[0]["values"]
    )

    spec["dataset"]["rows"] = [{**row, "judge": "down"} for row in spec["dataset"]["rows"]]
    bad = client.post("/v1/jobs", json=spec, headers=auth).json()["id"]
    job = worker.train(bad)
    assert job.status == "failed"
    assert job.error["code"] == "reward_error"
    message = job.error["message"]
    assert "reward 'judge' failed on 8 of 8 completions" in message and "judge is down" in message
    assert client.get(f"/v1/jobs/{bad}/metrics", headers=auth).json()["data"] == []  # failed in step 1


@pytest.mark.parametrize("on_alert", ["record", "stop"])
def test_reward_hacking_alert_is_on_the_job_and_can_stop_it(client, auth, worker, on_alert):
    # One-token completions from a ~20-token vocabulary: groups of 8 always hold duplicates.
    spec = tiny_spec(max_steps=4, group_size=8, max_new_tokens=1)
    spec["safeguards"] = {"window": 2, "identical_threshold": 0.01, "on_alert": on_alert}
    job_id = client.post("/v1/jobs", json=spec, headers=auth).json()["id"]
    job = worker.train(job_id)
    public = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert [(a["code"], a["step"]) for a in public["alerts"]] == [("identical_completions", 2)]
    events = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}, headers=auth).json()["data"]
    assert [(e["type"], e["step"]) for e in events if e["level"] == "warning"] == [("alert", 2)]
    if on_alert == "stop":
        assert job.status == "failed" and job.error["code"] == "safeguard_stop"
        assert job.error["param"] == "safeguards.on_alert" and "identical" in job.error["message"]
        assert public["progress"]["step"] == 2
    else:
        assert job.status == "succeeded" and public["progress"]["step"] == 4


def test_a_length_reward_counted_in_tokens_gets_the_models_tokenizer(client, auth, worker):
    spec = tiny_spec(max_steps=1, max_new_tokens=6)
    spec["rewards"] = [{"type": "length", "unit": "tokens", "max_length": 6, "buffer": 4, "name": "overlong"}]
    job_id = client.post("/v1/jobs", json=spec, headers=auth).json()["id"]
    job = worker.train(job_id)
    assert job.status == "succeeded", job.error
    [samples] = [client.get(f"/v1/jobs/{job_id}/samples", headers=auth).json()["data"]]
    for sample in samples:  # the tiny tokenizer has one token per character (plus the end token)
        tokens = len(sample["completion"])
        expected = 0.0 if tokens <= 2 else -1.0 if tokens > 6 else (2 - tokens) / 4
        assert sample["components"]["overlong"] == pytest.approx(expected), sample
