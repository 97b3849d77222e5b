"""On-demand evaluation of a stored checkpoint (its own worker task) and jobs that start from another job's
checkpoint, through the real runner."""

import uuid

from tests.utils.factories import tiny_spec

ALPHABET = "0123456789 +-=:>?"
EVAL = {  # a graded (not 0/1) held-out score, so that different weights give different numbers
    "dataset": {"rows": [{"prompt": f"{d}>", "target": ALPHABET[d : d + 6]} for d in range(6)]},
    "rewards": [{"type": "text_similarity", "field": "target", "name": "similar"}],
    "every": 2,
    "greedy": False,  # sampled with a fixed seed: reproducible, and sensitive to any change of the weights
    "samples_per_prompt": 4,
}


def job_spec(**sections):
    spec = tiny_spec(max_steps=2, learning_rate=0.05)
    spec["rewards"] = [{"type": "text_similarity", "metric": "edit_ratio"}]  # graded: the policy moves
    return spec | {"checkpoint": {"every": 2}, "eval": EVAL} | sections


def evaluations(client, auth, job_id):
    return client.get(f"/v1/jobs/{job_id}/evaluations", headers=auth).json()["data"]


def test_on_demand_evaluation_reproduces_the_scheduled_one(client, auth, queue, worker):
    job_id = client.post("/v1/jobs", json=job_spec(), headers=auth).json()["id"]
    assert worker.train(job_id).status == "succeeded"
    scheduled = {e["step"]: e for e in evaluations(client, auth, job_id)}
    assert sorted(scheduled) == [0, 2] and scheduled[2]["trigger"] == "scheduled"
    [checkpoint] = client.get(f"/v1/jobs/{job_id}/checkpoints", headers=auth).json()["data"]
    assert checkpoint["eval_score"] == scheduled[2]["metrics"]["eval/accuracy"]  # stored per checkpoint

    created = client.post(f"/v1/jobs/{job_id}/evaluations", json={"step": 2}, headers=auth).json()
    assert created["status"] == "queued" and queue.evaluations == [uuid.UUID(created["id"])]
    worker.evaluate(created["id"])
    [on_demand] = [e for e in evaluations(client, auth, job_id) if e["trigger"] == "on_demand"]
    assert on_demand["status"] == "succeeded", on_demand["error"]
    # The same checkpoint, data, graders, sampling and seed as in training: the same numbers.
    assert on_demand["metrics"] == scheduled[2]["metrics"]
    assert {"eval/accuracy", "eval/reward_mean", "eval/pass@1", "eval/similar/mean"} <= set(on_demand["metrics"])

    thresholded = client.post(
        f"/v1/jobs/{job_id}/evaluations", json={"step": 2, "success_threshold": 0.05}, headers=auth
    ).json()
    worker.evaluate(thresholded["id"])
    metrics = next(e for e in evaluations(client, auth, job_id) if e["id"] == thresholded["id"])["metrics"]
    assert metrics["eval/pass@1"] == metrics["eval/accuracy"]  # unbiased pass@1 is the mean accuracy
    assert metrics["eval/pass@1"] <= metrics["eval/pass@2"] <= metrics["eval/pass@4"]
    assert metrics["eval/pass@4"] > metrics["eval/pass@1"] > 0.0  # a threshold some samples meet


def test_a_job_started_from_another_jobs_checkpoint_starts_from_its_weights(client, auth, worker):
    first = client.post("/v1/jobs", json=job_spec(), headers=auth).json()["id"]
    assert worker.train(first).status == "succeeded"
    first_evals = {e["step"]: e["metrics"] for e in evaluations(client, auth, first)}
    final_eval = first_evals[2]
    assert first_evals[0] != final_eval  # the evaluation tells the initial and the trained weights apart

    second_spec = job_spec(init_from={"job_id": first, "step": 2})
    second_spec["grpo"]["max_steps"] = 1
    second = client.post("/v1/jobs", json=second_spec, headers=auth)
    assert second.status_code == 201, second.text
    assert worker.train(second.json()["id"]).status == "succeeded"
    start_eval = {e["step"]: e["metrics"] for e in evaluations(client, auth, second.json()["id"])}[0]
    # Step 0 of the new job evaluates the weights it starts from: those of the first job's checkpoint.
    assert start_eval == final_eval


def test_on_demand_evaluation_of_a_job_whose_eval_section_has_no_rewards_uses_the_jobs_rewards(client, auth, worker):
    # The stored spec holds "eval": {..., "rewards": null}; the evaluation must fall back to the job's rewards.
    eval_section = {key: value for key, value in EVAL.items() if key != "rewards"}
    eval_section["dataset"] = {"rows": [{"prompt": f"{d}>", "answer": ALPHABET[d : d + 6]} for d in range(6)]}
    submitted = client.post("/v1/jobs", json=job_spec(eval=eval_section), headers=auth)
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    assert worker.train(job_id).status == "succeeded"
    created = client.post(f"/v1/jobs/{job_id}/evaluations", json={"step": 2}, headers=auth)
    assert created.status_code == 202, created.text
    worker.evaluate(created.json()["id"])
    [on_demand] = [e for e in evaluations(client, auth, job_id) if e["trigger"] == "on_demand"]
    assert on_demand["status"] == "succeeded", on_demand["error"]


def test_a_failed_evaluation_reports_a_validation_problem_without_pydantic_text():
    from pydantic import BaseModel, ValidationError

    from workers.runner import error_body

    class Spec(BaseModel):
        rewards: list[int]

    try:
        Spec.model_validate({"rewards": "x"})
    except ValidationError as exc:
        body = error_body(exc)
    assert body["message"] == "invalid spec: rewards: Input should be a valid list"
    assert "errors.pydantic.dev" not in body["message"]
