"""Retried creates never create twice; per-tenant queue quotas answer 429 with Retry-After; operator limits.

Runs on SQLite and PostgreSQL (the fixtures are parametrized over both).
"""

import threading
import uuid

import pytest
from pydantic import BaseModel
from sqlalchemy import select

from app.core.errors import ProblemError
from app.models import Tenant
from app.services.idempotency import run_idempotent
from tests.utils.api import make_checkpoint_dir, running_job, store_checkpoint
from tests.utils.factories import tiny_spec

JSONL_TYPE = {"Content-Type": "application/jsonl"}


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


def replayed(first, second) -> bool:
    return first.json() == second.json() and second.headers.get("idempotent-replayed") == "true"


def test_every_create_replays_and_refuses_a_different_body(client, auth, session_factory, settings, tmp_path, queue):
    key = {"Idempotency-Key": "create-1"}
    upload = {"params": {"name": "d"}, "headers": auth | JSONL_TYPE | key}
    first = client.post("/v1/datasets", content=b'{"prompt": "p"}\n', **upload)
    again = client.post("/v1/datasets", content=b'{"prompt": "p"}\n', **upload)
    assert first.status_code == again.status_code == 201 and replayed(first, again)
    assert client.post("/v1/datasets", content=b'{"prompt": "q"}\n', **upload).status_code == 409
    assert len(client.get("/v1/datasets", headers=auth).json()["data"]) == 1

    reward_body = {"name": "r", "spec": {"type": "exact_match", "field": "answer"}}
    key = {"Idempotency-Key": "create-2"}
    first = client.post("/v1/rewards", json=reward_body, headers=auth | key)
    again = client.post("/v1/rewards", json=reward_body, headers=auth | key)
    assert first.status_code == 201 and replayed(first, again)
    assert client.post("/v1/rewards", json=reward_body | {"name": "s"}, headers=auth | key).status_code == 409

    versions = f"/v1/rewards/{first.json()['id']}/versions"
    version_body = {"spec": {"type": "exact_match", "field": "answer", "case_sensitive": False}}
    key = {"Idempotency-Key": "create-3"}
    first_version = client.post(versions, json=version_body, headers=auth | key)
    again = client.post(versions, json=version_body, headers=auth | key)
    assert first_version.status_code == 201 and replayed(first_version, again)
    assert client.get(f"/v1/rewards/{first.json()['id']}", headers=auth).json()["versions"] == [1, 2]
    assert client.post(versions, json={"spec": {"type": "exact_match"}}, headers=auth | key).status_code == 409

    job_id = running_job(client, auth, session_factory)
    store_checkpoint(session_factory, settings, job_id, 1, make_checkpoint_dir(tmp_path / "ck", "1"))
    key = {"Idempotency-Key": "create-4"}
    body = {"rows": [{"prompt": "x", "answer": "1"}]}
    first = client.post(f"/v1/jobs/{job_id}/evaluations", json=body, headers=auth | key)
    again = client.post(f"/v1/jobs/{job_id}/evaluations", json=body, headers=auth | key)
    assert first.status_code == again.status_code == 202 and replayed(first, again)
    assert len(queue.evaluations) == 1
    # A key names one request: reusing it on another route is a conflict, not a replay.
    assert client.post("/v1/jobs", json=tiny_spec(), headers=auth | key).status_code == 409


@pytest.mark.usefixtures("auth")  # creates the tenant
def test_concurrent_retries_with_one_key_create_once(session_factory):
    """Two copies of a request racing: one creates, the other waits for it (409 in progress) or replays."""
    with session_factory() as session:
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.name == "team-a"))
    created, inside = [], threading.Event()
    release = threading.Event()

    def slow_create() -> BaseModel:
        inside.set()
        release.wait(10)
        created.append(1)
        return Marker(value=len(created))

    def call(results: list) -> None:
        with session_factory() as session:
            try:
                results.append(
                    run_idempotent(
                        session=session,
                        tenant_id=tenant_id,
                        key="race",
                        scope="POST /v1/things",
                        payload={"a": 1},
                        status_code=201,
                        create=slow_create,
                        load=Marker.model_validate,
                    )
                )
            except ProblemError as exc:
                results.append(exc)

    first_results: list = []
    first = threading.Thread(target=call, args=(first_results,))
    first.start()
    assert inside.wait(10)
    second_results: list = []
    call(second_results)  # while the first is still creating
    assert isinstance(second_results[0], ProblemError) and second_results[0].code == "idempotency_key_in_progress"
    release.set()
    first.join(10)
    third_results: list = []
    call(third_results)
    assert created == [1] and first_results[0] == (Marker(value=1), False)
    assert third_results[0] == (Marker(value=1), True)  # the replay


class Marker(BaseModel):
    value: int


def test_operator_limits_cover_evaluation_too(client, auth, session_factory, settings, tmp_path):
    settings.max_new_tokens_limit = 16
    settings.max_group_size = 8
    spec = tiny_spec()
    spec["eval"] = {"dataset": {"rows": [{"prompt": "x", "answer": "1"}]}, "max_new_tokens": 17}
    response = client.post("/v1/jobs", json=spec, headers=auth)
    assert response.status_code == 422 and response.json()["errors"][0] == {
        "field": "eval.max_new_tokens",
        "message": "17 exceeds this server's limit of 16",
        "type": "limit_exceeded",
    }
    job_id = running_job(client, auth, session_factory)
    store_checkpoint(session_factory, settings, job_id, 1, make_checkpoint_dir(tmp_path / "ck", "1"))
    rows = [{"prompt": "x", "answer": "1"}]
    for body, field in [
        ({"rows": rows, "max_new_tokens": 100}, "max_new_tokens"),
        ({"rows": rows, "greedy": False, "samples_per_prompt": 9}, "samples_per_prompt"),
    ]:
        over = client.post(f"/v1/jobs/{job_id}/evaluations", json=body, headers=auth)
        assert over.status_code == 422 and over.json()["errors"][0]["field"] == field, over.text
    settings.max_dataset_rows = 1
    many = client.post(f"/v1/jobs/{job_id}/evaluations", json={"rows": rows * 2}, headers=auth)
    assert many.status_code == 422 and many.json()["errors"][0]["field"] == "rows"
