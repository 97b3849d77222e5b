"""Job resource: submit, read, list with cursors, cancel, metrics, tenant isolation."""

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.crud.metrics import upsert_step_metrics
from app.models import ApiKey
from app.schemas.job import JobStatus
from app.services import runs
from app.services.tenants import revoke_api_key
from tests.utils.api import submit
from tests.utils.factories import RecordingQueue, tiny_spec


def test_submit_returns_queued_job_and_enqueues_its_id(client, auth, queue: RecordingQueue):
    job = submit(client, auth)
    assert job["status"] == "queued"
    assert job["progress"] == {"step": 0, "total_steps": 3, "fraction": 0.0, "eta_seconds": None, "tokens_per_s": None}
    assert job["spec"]["grpo"]["group_size"] == 4
    assert job["spec"]["grpo"]["loss_type"] == "dapo"  # defaults are filled in and stored
    assert queue.enqueued == [uuid.UUID(job["id"])]
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["id"] == job["id"]


def test_every_job_endpoint_requires_a_key(client, auth):
    job = submit(client, auth)
    for method, path in [
        ("post", "/v1/jobs"),
        ("get", "/v1/jobs"),
        ("get", f"/v1/jobs/{job['id']}"),
        ("post", f"/v1/jobs/{job['id']}/cancel"),
        ("get", f"/v1/jobs/{job['id']}/metrics"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 401, path
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["www-authenticate"] == "Bearer"
    bad = client.get("/v1/jobs", headers={"Authorization": "Bearer grpo_not-a-key"})
    assert bad.status_code == 401 and bad.json()["code"] == "unauthorized"


def test_other_tenants_jobs_are_invisible(client, auth, other_auth):
    job = submit(client, auth)
    for method, path in [
        ("get", f"/v1/jobs/{job['id']}"),
        ("post", f"/v1/jobs/{job['id']}/cancel"),
        ("get", f"/v1/jobs/{job['id']}/metrics"),
    ]:
        response = client.request(method, path, headers=other_auth)
        assert response.status_code == 404, path
    assert client.get("/v1/jobs", headers=other_auth).json()["data"] == []


def test_list_pages_with_a_stable_cursor_and_filters(client, auth):
    ids = [submit(client, auth)["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/jobs", params=params, headers=auth).json()
        seen += [job["id"] for job in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # newest first, nothing skipped or repeated
    assert client.get("/v1/jobs", params={"status": "running"}, headers=auth).json()["data"] == []
    assert len(client.get("/v1/jobs", params={"status": "queued"}, headers=auth).json()["data"]) == 5
    bad = client.get("/v1/jobs", params={"cursor": "garbage"}, headers=auth)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"


def test_cancel_queued_job_at_once_and_refuse_twice(client, auth):
    job = submit(client, auth)
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth).json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    again = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
    assert again.status_code == 409 and again.json()["code"] == "job_finished"


def test_cancel_running_job_sets_the_flag_the_worker_polls(client, auth, session_factory: sessionmaker[Session]):
    job = submit(client, auth)
    job_id = uuid.UUID(job["id"])
    with session_factory() as session:
        assert runs.claim_job(session=session, job_id=job_id, worker_id="w1", max_attempts=3) is not None
    response = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth).json()
    assert response["status"] == "running" and response["cancel_requested"] is True
    with session_factory() as session:
        outcome = runs.record_step(
            session=session, job_id=job_id, worker_id="w1", step=1, metrics={"loss": 0.5}, step_seconds=1.0
        )
    assert outcome == "cancel"


def test_metrics_grouped_by_step_filtered_and_paged(client, auth, session_factory):
    job = submit(client, auth)
    job_id = uuid.UUID(job["id"])
    with session_factory() as session:
        for step in range(1, 6):
            upsert_step_metrics(
                session=session, job_id=job_id, step=step, metrics={"reward/mean": step / 10, "loss": -step}
            )
        session.commit()
    page = client.get(f"/v1/jobs/{job_id}/metrics", params={"limit": 2}, headers=auth).json()
    assert page["data"] == [
        {"step": 1, "values": {"loss": -1.0, "reward/mean": 0.1}},
        {"step": 2, "values": {"loss": -2.0, "reward/mean": 0.2}},
    ]
    rest = client.get(f"/v1/jobs/{job_id}/metrics", params={"cursor": page["next_cursor"]}, headers=auth).json()
    assert [row["step"] for row in rest["data"]] == [3, 4, 5] and rest["next_cursor"] is None
    only = client.get(
        f"/v1/jobs/{job_id}/metrics", params={"name": "reward/mean", "step_gte": 2, "step_lte": 3}, headers=auth
    ).json()
    assert only["data"] == [{"step": 2, "values": {"reward/mean": 0.2}}, {"step": 3, "values": {"reward/mean": 0.3}}]


def test_metric_writes_are_idempotent(session_factory, client, auth):
    job_id = uuid.UUID(submit(client, auth)["id"])
    with session_factory() as session:
        runs.claim_job(session=session, job_id=job_id, worker_id="w1", max_attempts=3)
        for _ in range(2):  # a resumed worker re-writes step 1
            runs.record_step(
                session=session,
                job_id=job_id,
                worker_id="w1",
                step=1,
                metrics={"loss": 1.0, "reward/mean": 0.5},
                step_seconds=0.1,
            )
    rows = client.get(f"/v1/jobs/{job_id}/metrics", headers=auth).json()["data"]
    assert rows == [{"step": 1, "values": {"loss": 1.0, "reward/mean": 0.5}}]
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).json()["status"] == JobStatus.running


def test_queue_outage_fails_the_job_visibly(client, auth):
    class BrokenQueue:
        def enqueue_training(self, job_id: uuid.UUID) -> None:
            raise ConnectionError("broker down")

    client.app.state.queue = BrokenQueue()
    response = client.post("/v1/jobs", json=tiny_spec(), headers=auth)
    assert response.status_code == 503 and response.headers["retry-after"] == "30"
    job = client.get("/v1/jobs", headers=auth).json()["data"][0]
    assert job["status"] == "failed" and job["error"]["code"] == "enqueue_failed"


def test_keys_record_their_last_use_and_revoked_keys_stop_working(client, auth, session_factory):
    assert client.get("/v1/jobs", headers=auth).status_code == 200
    with session_factory() as session:
        key = session.scalar(select(ApiKey))
        assert key.last_used_at is not None
        revoke_api_key(session=session, key_id=key.id)
    response = client.get("/v1/jobs", headers=auth)
    assert response.status_code == 401 and response.json()["detail"] == "invalid or revoked API key"
