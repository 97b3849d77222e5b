"""Inputs one backend could store and another could not (NUL characters, NaN, integers past 32 bits) are
422s naming the field on both, never a 500 on PostgreSQL. Found by the schemathesis run."""

import json
import uuid

from tests.utils.api import JSONL
from tests.utils.factories import tiny_spec

HUGE = 2**40


def problem(response, status: int = 422) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def test_nul_characters_and_non_finite_numbers_in_bodies(client, auth):
    spec = tiny_spec()
    spec["dataset"]["rows"][0]["prompt"] = "copy\x00 1:"
    body = problem(client.post("/v1/jobs", json=spec, headers=auth))
    assert body["errors"][0]["type"] == "unstorable_value" and "dataset.rows[0].prompt" in body["detail"]
    raw = json.dumps(tiny_spec()).replace('"answer": "0"', '"answer": NaN').encode()  # Python's json reads NaN
    nan = problem(client.post("/v1/jobs", content=raw, headers=auth | {"Content-Type": "application/json"}))
    assert "dataset.rows[0].answer: must be a finite number" in nan["detail"]
    reward = {"name": "r", "spec": {"type": "exact_match"}, "description": "a\x00"}
    assert "description" in problem(client.post("/v1/rewards", json=reward, headers=auth))["detail"]
    line = problem(
        client.post("/v1/datasets", params={"name": "d"}, content=b'{"p": "a\\u0000"}\n', headers=auth | JSONL)
    )
    assert line["code"] == "invalid_jsonl" and line["errors"][0]["field"] == "line 1"


def test_nul_characters_in_query_parameters(client, auth):
    job = client.post("/v1/jobs", json=tiny_spec(), headers=auth).json()
    for path, params in [
        ("/v1/jobs", {"name": "a\x00"}),
        ("/v1/datasets", {"name": "a\x00"}),
        ("/v1/rewards", {"name": "a\x00"}),
        (f"/v1/jobs/{job['id']}/metrics", {"name": "loss\x00"}),
        (f"/v1/jobs/{job['id']}/events", {"type": "status\x00"}),
    ]:
        assert problem(client.get(path, params=params, headers=auth))["code"] == "validation_error", path
    upload = client.post("/v1/datasets", params={"name": "d\x00"}, content=b'{"p": 1}\n', headers=auth | JSONL)
    assert problem(upload)["errors"][0]["field"] == "name"


def test_integers_beyond_the_columns(client, auth):
    job = client.post("/v1/jobs", json=tiny_spec(), headers=auth).json()
    reward = client.post("/v1/rewards", json={"name": "r", "spec": {"type": "exact_match"}}, headers=auth).json()
    for method, path, params, body in [
        ("get", f"/v1/jobs/{job['id']}/checkpoints/{HUGE}", None, None),
        ("get", f"/v1/jobs/{job['id']}/checkpoints/{HUGE}/download", None, None),
        ("get", f"/v1/jobs/{job['id']}/checkpoints", {"step_lte": HUGE}, None),
        ("get", f"/v1/jobs/{job['id']}/samples", {"step": HUGE}, None),
        ("get", f"/v1/jobs/{job['id']}/metrics", {"step_gte": HUGE}, None),
        ("get", f"/v1/jobs/{job['id']}/events", {"after": 2**64}, None),
        ("post", f"/v1/jobs/{job['id']}/evaluations", None, {"step": HUGE}),
        ("get", f"/v1/rewards/{reward['id']}/versions/{HUGE}", None, None),
        ("post", f"/v1/rewards/{reward['id']}/test", None, {"version": HUGE, "samples": [{"completion": "x"}]}),
        ("post", "/v1/jobs", None, tiny_spec() | {"init_from": {"job_id": job["id"], "step": HUGE}}),
        (
            "post",
            "/v1/jobs",
            None,
            tiny_spec() | {"rewards": [{"type": "ref", "reward_id": reward["id"], "version": HUGE}]},
        ),
    ]:
        response = client.request(method, path, params=params, json=body, headers=auth)
        assert problem(response)["code"] == "validation_error", (path, params, body)
    stream = client.get(f"/v1/jobs/{job['id']}/events", headers=auth | {"Last-Event-ID": str(2**64)})
    assert problem(stream)["errors"][0]["field"] == "Last-Event-ID"
    assert client.get(f"/v1/jobs/{uuid.uuid4()}/checkpoints/1", headers=auth).status_code == 404
