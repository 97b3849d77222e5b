"""Reward definitions as resources: create (validated), version, test on samples, use from jobs, delete."""

from tests.utils.factories import tiny_spec
from tests.utils.rewards import requires_root

PYTHON_REWARD = {
    "type": "python",
    "code": "def reward(prompt, completion, row):\n    return float(completion.strip() == row['answer'])\n",
}


def create(client, auth, name="exact", spec=None, **extra):
    body = {"name": name, "spec": spec or {"type": "exact_match", "field": "answer"}, **extra}
    return client.post("/v1/rewards", json=body, headers=auth)


def test_create_read_list_and_version(client, auth):
    created = create(client, auth)
    assert created.status_code == 201, created.text
    reward = created.json()
    assert reward["latest_version"] == 1 and reward["versions"] == [1] and reward["spec"]["type"] == "exact_match"
    assert create(client, auth).status_code == 409  # names are unique per tenant

    version = client.post(
        f"/v1/rewards/{reward['id']}/versions",
        json={"spec": {"type": "exact_match", "field": "answer", "case_sensitive": False}},
        headers=auth,
    )
    assert version.status_code == 201 and version.json()["version"] == 2
    latest = client.get(f"/v1/rewards/{reward['id']}", headers=auth).json()
    assert latest["versions"] == [1, 2] and latest["spec"]["case_sensitive"] is False
    first = client.get(f"/v1/rewards/{reward['id']}/versions/1", headers=auth).json()
    assert first["spec"]["case_sensitive"] is True  # versions never change
    assert [r["id"] for r in client.get("/v1/rewards", headers=auth).json()["data"]] == [reward["id"]]


def test_python_rewards_are_validated_at_creation(client, auth):
    syntax = create(client, auth, name="broken", spec={"type": "python", "code": "def reward(:\n"})
    assert syntax.status_code == 422 and syntax.json()["errors"][0]["field"].startswith("spec")
    no_function = create(client, auth, name="nofn", spec={"type": "python", "code": "x = 1\n"})
    assert no_function.status_code == 422
    sample = {"prompt": "p", "completion": "7", "row": {"answer": "7"}}
    crashing = create(
        client,
        auth,
        name="crash",
        spec={"type": "python", "code": "def reward(p, c, r):\n    return 1/0\n"},
        validation_sample=sample,
    )
    assert crashing.status_code == 422 and "ZeroDivisionError" in crashing.json()["detail"]
    good = create(client, auth, name="py", spec=PYTHON_REWARD, validation_sample=sample)
    assert good.status_code == 201, good.text


def test_test_endpoints_score_samples_with_breakdown_and_errors(client, auth):
    reward = create(
        client, auth, name="py", spec=PYTHON_REWARD, validation_sample={"completion": "1", "row": {"answer": "1"}}
    ).json()
    samples = [
        {"completion": "4", "row": {"answer": "4"}},
        {"completion": "5", "row": {"answer": "4"}},
        {"completion": "4", "row": {}},
    ]
    result = client.post(f"/v1/rewards/{reward['id']}/test", json={"samples": samples}, headers=auth).json()
    assert [r["total"] for r in result["results"]][:2] == [1.0, 0.0]
    assert result["results"][2]["errors"] and "KeyError" in next(iter(result["results"][2]["errors"].values()))
    assert result["error_count"] == 1

    inline = client.post(
        "/v1/rewards:test",
        headers=auth,
        json={
            "reward": {"type": "math_equivalence", "field": "answer"},
            "samples": [
                {"completion": "The answer is \\boxed{\\frac{1}{2}}", "row": {"answer": "0.5"}},
                {"completion": "\\boxed{1+2x}", "row": {"answer": "2x+1"}},
                {"completion": "\\boxed{3}", "row": {"answer": "2"}},
            ],
        },
    )
    assert inline.status_code == 200, inline.text
    assert [r["total"] for r in inline.json()["results"]] == [1.0, 1.0, 0.0]


def test_jobs_pin_referenced_versions_and_block_deletion(client, auth, other_auth):
    reward = create(client, auth).json()
    spec = tiny_spec()
    spec["rewards"] = [{"type": "ref", "reward_id": reward["id"], "weight": 2.0}]
    job = client.post("/v1/jobs", json=spec, headers=auth)
    assert job.status_code == 201, job.text
    pinned = job.json()["spec"]["rewards"][0]
    assert pinned["version"] == 1 and pinned["name"] == "exact" and pinned["resolved"]["type"] == "exact_match"

    blocked = client.delete(f"/v1/rewards/{reward['id']}", headers=auth)
    assert blocked.status_code == 409 and blocked.json()["code"] == "reward_in_use"
    client.post(f"/v1/jobs/{job.json()['id']}/cancel", headers=auth)
    assert client.delete(f"/v1/rewards/{reward['id']}", headers=auth).status_code == 204
    assert client.get(f"/v1/rewards/{reward['id']}", headers=auth).status_code == 404

    missing = client.post("/v1/jobs", json=spec, headers=auth)
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "rewards[0].reward_id"
    theirs = create(client, other_auth, name="theirs").json()
    spec["rewards"] = [{"type": "ref", "reward_id": theirs["id"]}]
    assert client.post("/v1/jobs", json=spec, headers=auth).status_code == 422


def test_rewards_are_tenant_scoped(client, auth, other_auth):
    reward = create(client, auth).json()
    for method, path, body in [
        ("get", f"/v1/rewards/{reward['id']}", None),
        ("get", f"/v1/rewards/{reward['id']}/versions/1", None),
        ("post", f"/v1/rewards/{reward['id']}/versions", {"spec": {"type": "exact_match"}}),
        ("post", f"/v1/rewards/{reward['id']}/test", {"samples": [{"completion": "x"}]}),
        ("delete", f"/v1/rewards/{reward['id']}", None),
    ]:
        assert client.request(method, path, json=body, headers=other_auth).status_code == 404, path
    assert client.get("/v1/rewards", headers=other_auth).json()["data"] == []


HOSTILE = """
import os
def reward(prompt, completion, row):
    if completion == 'exit':
        os._exit(0)
    if completion == 'loop':
        while True:
            pass
    if completion == 'fork':
        while True:
            os.fork()
    if completion == 'env':
        return float(len(os.environ.get('GRPO_SECRET_KEY', '')))
    if completion == 'string':
        return 'one'
    return 1.0
"""


@requires_root
def test_hostile_reward_code_fails_its_samples_and_the_api_keeps_serving(client, auth, monkeypatch):
    monkeypatch.setenv("GRPO_SECRET_KEY", "s" * 40)  # in the API's environment, not the sandbox's
    attacks = ["exit", "loop", "fork", "string"]
    body = {
        "reward": {"type": "python", "code": HOSTILE, "timeout_s": 1.0, "max_error_rate": 1.0},
        "samples": [{"completion": c} for c in [*attacks, "env", "fine"]],
    }
    result = client.post("/v1/rewards:test", json=body, headers=auth)
    assert result.status_code == 200, result.text
    scores = result.json()["results"]
    errors = [next(iter(s["errors"].values()), "") for s in scores]
    assert "exited" in errors[0] and "timed out" in errors[1] and "BlockingIOError" in errors[2]
    assert "reward returned str" in errors[3]
    assert [s["total"] for s in scores[4:]] == [0.0, 1.0]  # no service environment; a normal call still works
    assert result.json()["error_count"] == 4
    assert client.get("/healthz").status_code == 200
    again = client.post("/v1/rewards:test", json={**body, "samples": [{"completion": "fine"}]}, headers=auth)
    assert again.json()["results"][0]["total"] == 1.0
