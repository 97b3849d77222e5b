"""Tenants cannot see or touch each other's resources: every id-taking route answers 404 to another tenant.

Runs on SQLite and on PostgreSQL (the `client` fixture is parametrized over both backends). The table
below must name every /v1 route with a path parameter, so a new route cannot skip this check.
"""

import uuid

import pytest

from app.core.storage import make_store
from app.services import artifacts, runs
from tests.utils.api import JSONL, jsonl, make_checkpoint_dir, sample
from tests.utils.factories import tiny_spec

ROWS = [{"prompt": "1:", "answer": "1"}]

# (method, route template) -> (JSON body, status the owner gets). Ordered: the owner's destructive
# calls (cancel, delete) come last.
ROUTES = {
    ("GET", "/v1/jobs/{job_id}"): (None, 200),
    ("GET", "/v1/jobs/{job_id}/metrics"): (None, 200),
    ("GET", "/v1/jobs/{job_id}/events"): (None, 200),
    ("GET", "/v1/jobs/{job_id}/samples"): (None, 200),
    ("GET", "/v1/jobs/{job_id}/checkpoints"): (None, 200),
    ("GET", "/v1/jobs/{job_id}/checkpoints/{step}"): (None, 200),
    ("GET", "/v1/jobs/{job_id}/checkpoints/{step}/download"): (None, 200),
    ("GET", "/v1/jobs/{job_id}/evaluations"): (None, 200),
    ("GET", "/v1/jobs/{job_id}/checkpoints/{step}/manifest"): (None, 404),  # code manifest_missing: no worker wrote it
    ("POST", "/v1/jobs/{job_id}/evaluations"): ({"rows": ROWS}, 202),
    ("GET", "/v1/datasets/{dataset_id}"): (None, 200),
    ("GET", "/v1/rewards/{reward_id}"): (None, 200),
    ("GET", "/v1/rewards/{reward_id}/versions/{version}"): (None, 200),
    ("POST", "/v1/rewards/{reward_id}/versions"): ({"spec": {"type": "exact_match", "field": "answer"}}, 201),
    ("POST", "/v1/rewards/{reward_id}/test"): ({"samples": [{"completion": "1", "row": {"answer": "1"}}]}, 200),
    ("PATCH", "/v1/jobs/{job_id}/budget"): ({"reward_calls": 100}, 200),
    ("POST", "/v1/jobs/{job_id}/pause"): (None, 200),
    ("POST", "/v1/jobs/{job_id}/resume"): (None, 409),  # still pausing: its worker holds it
    ("POST", "/v1/jobs/{job_id}/cancel"): (None, 200),
    ("DELETE", "/v1/rewards/{reward_id}"): (None, 204),
}
# Routes other engineers may add with path parameters are covered once they are listed above.
KNOWN_ELSEWHERE = {
    ("POST", "/v1/jobs/{job_id}/checkpoints/{step}/merge"),
    ("GET", "/v1/preflight/{preflight_id}"),  # tests/api/test_preflight.py: another tenant gets 404
    # tests/services/test_webhooks.py: another tenant gets 404 on each
    ("GET", "/v1/webhooks/{webhook_id}"),
    ("DELETE", "/v1/webhooks/{webhook_id}"),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"),
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"),
    # OpenAI-shaped 404s: tests/api/test_openai_ft.py::test_other_tenant_sees_not_found checks each one
    *[("GET", "/v1/fine_tuning/jobs/{job_id}" + tail) for tail in ("", "/events", "/checkpoints")],
    *[("POST", "/v1/fine_tuning/jobs/{job_id}/" + action) for action in ("cancel", "pause", "resume")],
    ("GET", "/v1/files/{file_id}"),
    ("GET", "/v1/files/{file_id}/content"),
    ("DELETE", "/v1/files/{file_id}"),
    # OpenAI-shaped 404 (model_not_found): tests/api/test_inference_routes.py checks another tenant's ids
    ("GET", "/v1/models/{model_id}"),
    # secrets are addressed by the caller's own names: tests/api/test_secrets.py checks they do not cross
    ("PUT", "/v1/secrets/{name}"),
    ("DELETE", "/v1/secrets/{name}"),
}


@pytest.fixture
def owned(client, auth, session_factory, settings, tmp_path) -> dict[str, str]:
    """Tenant A's world: a running job with metrics, samples, a checkpoint and an evaluation; a dataset; a reward."""
    job_id = client.post("/v1/jobs", json=tiny_spec(), headers=auth).json()["id"]
    with session_factory() as session:
        runs.claim_job(session=session, job_id=uuid.UUID(job_id), worker_id="w1", max_attempts=3)
        runs.record_step(
            session=session,
            job_id=uuid.UUID(job_id),
            worker_id="w1",
            step=1,
            metrics={"loss": 0.5},
            step_seconds=0.1,
            samples=[sample(0, 0)],
        )
        artifacts.register_checkpoint(
            session=session,
            store=make_store(settings),
            job_id=uuid.UUID(job_id),
            step=1,
            local_dir=make_checkpoint_dir(tmp_path / "ck", "1"),
            metrics={},
        )
        artifacts.record_scheduled_evaluation(
            session=session, job_id=uuid.UUID(job_id), step=1, metrics={"eval/accuracy": 1.0}, config={}
        )
    dataset = client.post("/v1/datasets", params={"name": "mine"}, content=jsonl(ROWS), headers=auth | JSONL).json()
    reward = client.post(
        "/v1/rewards", json={"name": "mine", "spec": {"type": "exact_match", "field": "answer"}}, headers=auth
    ).json()
    return {"job_id": job_id, "step": "1", "dataset_id": dataset["id"], "reward_id": reward["id"], "version": "1"}


def test_the_table_names_every_id_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    routes = {(method.upper(), path) for path, operations in paths.items() if "{" in path for method in operations}
    assert routes - KNOWN_ELSEWHERE == set(ROUTES)


def test_another_tenant_gets_404_on_every_id_route(client, auth, other_auth, owned):
    for (method, template), (body, _) in ROUTES.items():
        path = template.format(**owned)
        response = client.request(method, path, json=body, headers=other_auth)
        assert response.status_code == 404, f"{method} {path}: {response.status_code} {response.text}"
        assert response.json()["code"] == "not_found"
    sse = client.get(f"/v1/jobs/{owned['job_id']}/events", headers=other_auth | {"Accept": "text/event-stream"})
    assert sse.status_code == 404
    # ... while the owner reaches every one of them (so the 404s above are not vacuous).
    for (method, template), (body, expected) in ROUTES.items():
        response = client.request(method, template.format(**owned), json=body, headers=auth)
        assert response.status_code == expected, f"{method} {template}: {response.text}"


def test_another_tenant_lists_nothing_and_cannot_reference(client, auth, other_auth, owned):
    for path in ["/v1/jobs", "/v1/datasets", "/v1/rewards"]:
        assert client.get(path, headers=other_auth).json()["data"] == [], path
        assert len(client.get(path, headers=auth).json()["data"]) == 1, path
    references = {
        "dataset.dataset_id": {"dataset": {"dataset_id": owned["dataset_id"]}},
        "rewards[0].reward_id": {"rewards": [{"type": "ref", "reward_id": owned["reward_id"]}]},
        "init_from.job_id": {"init_from": {"job_id": owned["job_id"]}},
    }
    for field, change in references.items():
        response = client.post("/v1/jobs", json=tiny_spec() | change, headers=other_auth)
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == field, response.text


def test_idempotency_keys_do_not_cross_tenants(client, auth, other_auth):
    first = client.post("/v1/jobs", json=tiny_spec(), headers=auth | {"Idempotency-Key": "shared"})
    theirs = client.post("/v1/jobs", json=tiny_spec(), headers=other_auth | {"Idempotency-Key": "shared"})
    assert first.status_code == theirs.status_code == 201 and first.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers
    assert client.get(f"/v1/jobs/{first.json()['id']}", headers=other_auth).status_code == 404
