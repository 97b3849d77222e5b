"""What a new user meets in the first hour (issue 13): finished jobs without an ETA, evaluations that finish
after they start, checkpoint sizes that say what they count, failure reasons in the job list, and clear
answers to a request without a JSON content type or with a field outside its section."""

import io
import tarfile
import uuid

from app.core.storage import make_store
from app.schemas.job import JobStatus
from app.services import artifacts, runs
from tests.utils.api import make_checkpoint_dir
from tests.utils.factories import tiny_spec


def submit(client, auth) -> uuid.UUID:
    response = client.post("/v1/jobs", json=tiny_spec(max_steps=10), headers=auth)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


def running_job_at_step_2(client, auth, session_factory) -> uuid.UUID:
    job_id = submit(client, auth)
    with session_factory() as session:
        runs.claim_job(session=session, job_id=job_id, worker_id="w1", max_attempts=3)
        for step in (1, 2):
            runs.record_step(session=session, job_id=job_id, worker_id="w1", step=step, metrics={}, step_seconds=3.0)
    return job_id


def test_only_a_running_job_has_an_eta_and_the_list_shows_why_a_job_failed(client, auth, session_factory):
    cancelled, failed = (running_job_at_step_2(client, auth, session_factory) for _ in range(2))
    assert client.get(f"/v1/jobs/{cancelled}", headers=auth).json()["progress"]["eta_seconds"] == 24.0
    error = {"code": "model_load_failed", "message": "no such model", "param": "model.source"}
    with session_factory() as session:
        runs.finish_job(session=session, job_id=cancelled, worker_id="w1", to=JobStatus.cancelled)
        runs.finish_job(session=session, job_id=failed, worker_id="w1", to=JobStatus.failed, error=error)
    for job_id in (cancelled, failed):
        job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
        assert job["progress"]["step"] == 2 and job["progress"]["eta_seconds"] is None
    listed = {job["id"]: job for job in client.get("/v1/jobs", headers=auth).json()["data"]}
    assert listed[str(failed)]["error"] == error and listed[str(failed)]["progress"]["eta_seconds"] is None


def test_a_scheduled_evaluation_does_not_finish_before_it_was_created(client, auth, session_factory):
    job_id = running_job_at_step_2(client, auth, session_factory)
    with session_factory() as session:
        artifacts.record_scheduled_evaluation(
            session=session, job_id=job_id, step=2, metrics={"eval/accuracy": 0.5}, config={}
        )
    [evaluation] = client.get(f"/v1/jobs/{job_id}/evaluations", headers=auth).json()["data"]
    assert evaluation["finished_at"] >= evaluation["created_at"]


def test_a_checkpoints_sizes_say_what_they_count_and_the_model_size_matches_the_download(
    client, auth, session_factory, settings, tmp_path
):
    job_id = running_job_at_step_2(client, auth, session_factory)
    with session_factory() as session:
        artifacts.register_checkpoint(
            session=session,
            store=make_store(settings),
            job_id=job_id,
            step=2,
            local_dir=make_checkpoint_dir(tmp_path / "ck", marker="2"),
            metrics={},
        )
    [listed] = client.get(f"/v1/jobs/{job_id}/checkpoints", headers=auth).json()["data"]
    one = client.get(f"/v1/jobs/{job_id}/checkpoints/2", headers=auth).json()
    assert listed["model_bytes"] is None and listed["size_bytes"] == one["size_bytes"]

    def downloaded_bytes(variant: str) -> int:
        download = client.get(f"/v1/jobs/{job_id}/checkpoints/2/download", params={"variant": variant}, headers=auth)
        with tarfile.open(fileobj=io.BytesIO(download.content)) as archive:
            return sum(member.size for member in archive.getmembers() if member.isfile())

    assert downloaded_bytes("model") == one["model_bytes"] == 1015
    assert 0 <= one["size_bytes"] - downloaded_bytes("full") < 100  # plus the completeness marker
    schema = client.get("/openapi.json").json()["components"]["schemas"]["CheckpointPublic"]["properties"]
    assert "optimiser" in schema["size_bytes"]["description"]


def test_a_body_without_a_json_content_type_is_a_415_that_names_it(client, auth):
    body = '{"name": "x"}'
    for headers in ({}, {"Content-Type": "application/x-www-form-urlencoded"}, {"Content-Type": "text/plain"}):
        response = client.post("/v1/jobs", content=body, headers=auth | headers)
        assert response.status_code == 415, response.text
        problem = response.json()
        assert problem["code"] == "unsupported_media_type" and "Content-Type: application/json" in problem["detail"]
    # A JSON body that is not an object is still the body's fault, not the content type's.
    wrong_shape = client.post("/v1/jobs", json=[1], headers=auth)
    assert wrong_shape.status_code == 422 and wrong_shape.json()["errors"][0]["field"] == "body"


def test_a_section_field_sent_at_the_top_level_says_where_it_belongs(client, auth):
    spec = tiny_spec() | {"learning_rate": 1e-3, "every": 5}
    response = client.post("/v1/jobs", json=spec, headers=auth)
    assert response.status_code == 422
    errors = {e["field"]: e for e in response.json()["errors"]}
    assert errors["learning_rate"]["message"].startswith("learning_rate belongs in grpo")
    assert errors["learning_rate"]["type"] == "misplaced_field"
    assert errors["every"]["message"].startswith("every belongs in checkpoint")
    unknown = client.post("/v1/jobs", json=tiny_spec() | {"colour": 1}, headers=auth)
    assert unknown.json()["errors"][0]["type"] == "extra_forbidden"


def test_a_model_source_that_cannot_load_is_refused_at_submission_naming_it(client, auth, settings):
    def submit_with(source: str):
        spec = tiny_spec()
        spec["model"] = {"source": source}
        return client.post("/v1/jobs", json=spec, headers=auth)

    missing = submit_with(str(settings.model_roots[0] / "not-there"))
    assert missing.status_code == 422 and "no directory" in missing.json()["detail"]
    (settings.model_roots[0] / "empty").mkdir(parents=True)
    empty = submit_with(str(settings.model_roots[0] / "empty"))
    assert empty.status_code == 422 and "config.json" in empty.json()["detail"]
    malformed = submit_with("not a hub id!")
    assert malformed.status_code == 422
    for response in (missing, empty, malformed):
        assert response.json()["errors"][0]["field"] == "model.source"
