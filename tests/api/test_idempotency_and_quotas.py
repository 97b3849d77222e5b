"""Retried creates never start two jobs; per-tenant queue quotas answer 429 with Retry-After."""

import uuid

from sqlalchemy import select

from app.models import Tenant
from tests.conftest import tiny_spec


def test_same_key_and_body_replays_the_first_response(client, auth, queue):
    headers = auth | {"Idempotency-Key": "submit-1"}
    first = client.post("/v1/jobs", json=tiny_spec(), headers=headers)
    second = client.post("/v1/jobs", json=tiny_spec(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json() and second.headers["idempotent-replayed"] == "true"
    assert len(queue.enqueued) == 1 and len(client.get("/v1/jobs", headers=auth).json()["data"]) == 1


def test_same_key_with_another_body_is_a_conflict(client, auth):
    headers = auth | {"Idempotency-Key": "submit-2"}
    assert client.post("/v1/jobs", json=tiny_spec(), headers=headers).status_code == 201
    other = client.post("/v1/jobs", json=tiny_spec(max_steps=7), headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"


def test_keys_are_per_tenant_and_failures_are_not_remembered(client, auth, other_auth):
    bad = tiny_spec(group_size=1)
    headers = auth | {"Idempotency-Key": "k"}
    assert client.post("/v1/jobs", json=bad, headers=headers).status_code == 422
    assert client.post("/v1/jobs", json=tiny_spec(), headers=headers).status_code == 201  # a fixed retry runs
    other = client.post("/v1/jobs", json=tiny_spec(), headers=other_auth | {"Idempotency-Key": "k"})
    assert other.status_code == 201 and other.headers.get("idempotent-replayed") is None


def test_queue_quota_is_429_with_retry_after(client, auth, session_factory):
    with session_factory() as session:
        tenant = session.scalar(select(Tenant).where(Tenant.name == "team-a"))
        tenant.max_queued_jobs = 2
        session.commit()
    for _ in range(2):
        assert client.post("/v1/jobs", json=tiny_spec(), headers=auth).status_code == 201
    over = client.post("/v1/jobs", json=tiny_spec(), headers=auth)
    assert over.status_code == 429 and over.headers["retry-after"] == "30"
    assert over.json()["code"] == "quota_exceeded"
    queued = client.get("/v1/jobs", headers=auth).json()["data"]
    client.post(f"/v1/jobs/{queued[0]['id']}/cancel", headers=auth)
    assert client.post("/v1/jobs", json=tiny_spec(), headers=auth).status_code == 201


def test_references_must_exist_and_belong_to_the_tenant(client, auth, other_auth):
    theirs = client.post(
        "/v1/datasets",
        params={"name": "d"},
        content=b'{"prompt": "p", "answer": "1"}\n',
        headers=other_auth | {"Content-Type": "application/jsonl"},
    ).json()
    spec = tiny_spec()
    spec["dataset"] = {"dataset_id": theirs["id"]}
    response = client.post("/v1/jobs", json=spec, headers=auth)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "dataset.dataset_id"
    assert client.post("/v1/jobs", json=spec, headers=other_auth).status_code == 201

    partial = client.post(
        "/v1/datasets",
        params={"name": "d"},
        content=b'{"prompt": "p", "answer": "1"}\n{"prompt": "q"}\n',
        headers=auth | {"Content-Type": "application/jsonl"},
    ).json()
    spec["dataset"] = {"dataset_id": partial["id"]}
    missing = client.post("/v1/jobs", json=spec, headers=auth)
    assert missing.status_code == 422 and "'answer'" in missing.json()["detail"]

    init = tiny_spec() | {"init_from": {"job_id": str(uuid.uuid4())}}
    assert client.post("/v1/jobs", json=init, headers=auth).json()["errors"][0]["field"] == "init_from.job_id"
    both = tiny_spec()
    both["dataset"]["dataset_id"] = partial["id"]
    assert client.post("/v1/jobs", json=both, headers=auth).json()["errors"][0]["field"] == "dataset"
