"""Events (JSON and SSE), samples, checkpoints (listing, retention, tar download) and evaluation requests."""

import io
import json
import tarfile
import uuid

import pytest

from app.core.storage import make_store
from app.schemas.job import JobStatus
from app.services import artifacts, runs
from tests.utils.api import make_checkpoint_dir, running_job, sample, store_checkpoint
from tests.utils.factories import tiny_spec


def test_events_follow_the_job_and_resume_after_an_id(client, auth, session_factory):
    job_id = running_job(client, auth, session_factory)
    with session_factory() as session:
        for step in (1, 2, 2):  # step 2 re-run after a resume is announced once
            runs.record_step(
                session=session, job_id=job_id, worker_id="w1", step=step, metrics={"loss": step}, step_seconds=0.1
            )
        runs.finish_job(session=session, job_id=job_id, worker_id="w1", to=JobStatus.succeeded)
    events = client.get(f"/v1/jobs/{job_id}/events", headers=auth).json()["data"]
    assert [(e["type"], e["data"].get("status") or e["data"].get("step")) for e in events] == [
        ("status", "queued"),
        ("status", "running"),
        ("metrics", 1),
        ("metrics", 2),
        ("status", "succeeded"),
    ]
    after_second = client.get(f"/v1/jobs/{job_id}/events", params={"after": events[1]["id"]}, headers=auth).json()
    assert [e["id"] for e in after_second["data"]] == [e["id"] for e in events[2:]]

    # SSE: the same events, with ids; the stream ends by itself once the job has ended.
    stream = client.get(
        f"/v1/jobs/{job_id}/events",
        headers=auth | {"Accept": "text/event-stream", "Last-Event-ID": str(events[2]["id"])},
    )
    assert stream.headers["content-type"].startswith("text/event-stream")
    frames = [frame for frame in stream.text.replace("\r\n", "\n").split("\n\n") if frame.startswith("id:")]
    ids = [int(frame.split("\n")[0].removeprefix("id:").strip()) for frame in frames]
    assert ids == [e["id"] for e in events[3:]]
    assert "event: status" in frames[-1] and '"succeeded"' in frames[-1]


def test_samples_are_paged_in_step_order_and_idempotent(client, auth, session_factory):
    job_id = running_job(client, auth, session_factory)
    with session_factory() as session:
        for step in (1, 2, 2):
            runs.record_step(
                session=session,
                job_id=job_id,
                worker_id="w1",
                step=step,
                metrics={},
                step_seconds=0.1,
                samples=[sample(0, 0), sample(0, 1), sample(3, 0)],
            )
        # The same prompt twice in a step (fewer rows than prompts_per_step) is two samples, not a clash.
        runs.record_step(
            session=session,
            job_id=job_id,
            worker_id="w1",
            step=3,
            metrics={},
            step_seconds=0.1,
            samples=[sample(1, 0), sample(1, 0)],
        )
    first = client.get(f"/v1/jobs/{job_id}/samples", params={"limit": 4}, headers=auth).json()
    assert [(s["step"], s["prompt_index"], s["group_index"]) for s in first["data"]] == [
        (1, 0, 0),
        (1, 0, 1),
        (1, 3, 0),
        (2, 0, 0),
    ]
    assert first["next_cursor"] is not None  # opaque: the key of (2, 0)
    rest = client.get(f"/v1/jobs/{job_id}/samples", params={"cursor": first["next_cursor"]}, headers=auth).json()
    assert len(rest["data"]) == 4 and rest["next_cursor"] is None
    only = client.get(f"/v1/jobs/{job_id}/samples", params={"step": 1}, headers=auth).json()["data"]
    assert {s["step"] for s in only} == {1} and only[0]["components"] == {"exact_match": 1.0}


def test_checkpoints_listing_retention_and_download(client, auth, session_factory, settings, tmp_path):
    job_id = running_job(client, auth, session_factory)
    store = make_store(settings)
    with session_factory() as session:
        for step in (10, 20, 30):
            local = make_checkpoint_dir(tmp_path / f"ck{step}", marker=str(step))
            artifacts.register_checkpoint(
                session=session,
                store=store,
                job_id=job_id,
                step=step,
                local_dir=local,
                metrics={"reward/mean": step / 100},
            )
        artifacts.record_scheduled_evaluation(
            session=session, job_id=job_id, step=10, metrics={"eval/accuracy": 0.9}, config={}
        )
        deleted = artifacts.apply_retention(session=session, store=store, job_id=job_id, keep_last=1, keep_best=1)
    assert deleted == [20]  # 30 is the newest, 10 the best evaluated
    listed = client.get(f"/v1/jobs/{job_id}/checkpoints", headers=auth).json()["data"]
    assert [(c["step"], c["eval_score"], c["size_bytes"]) for c in listed] == [(10, 0.9, 1318), (30, None, 1318)]
    one = client.get(f"/v1/jobs/{job_id}/checkpoints/30", headers=auth).json()
    assert one["files"] == ["config.json", "model.safetensors"]
    assert client.get(f"/v1/jobs/{job_id}/checkpoints/20", headers=auth).status_code == 404

    download = client.get(f"/v1/jobs/{job_id}/checkpoints/30/download", headers=auth)
    assert download.status_code == 200 and download.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(download.content)) as archive:
        names = archive.getnames()
        config = json.load(archive.extractfile(f"{job_id}-step000030/config.json"))
    assert sorted(names) == [f"{job_id}-step000030/config.json", f"{job_id}-step000030/model.safetensors"]
    assert config == {"marker": "30"}
    full = client.get(f"/v1/jobs/{job_id}/checkpoints/30/download", params={"variant": "full"}, headers=auth)
    with tarfile.open(fileobj=io.BytesIO(full.content)) as archive:
        assert f"{job_id}-step000030/trainer_state.pt" in archive.getnames()
    merged = client.get(f"/v1/jobs/{job_id}/checkpoints/30/download", params={"variant": "merged"}, headers=auth)
    assert merged.status_code == 409 and "not a LoRA checkpoint" in merged.json()["detail"]
    not_adapter = client.post(f"/v1/jobs/{job_id}/checkpoints/30/merge", headers=auth)
    assert not_adapter.status_code == 409 and not_adapter.json()["code"] == "not_an_adapter"
    assert client.post(f"/v1/jobs/{job_id}/checkpoints/20/merge", headers=auth).status_code == 404  # retained away


def test_merge_requests_are_queued_until_ready_and_a_lost_one_can_be_asked_again(
    client, auth, session_factory, settings, tmp_path, queue
):
    from app.services import merges

    job_id = running_job(client, auth, session_factory)
    local = make_checkpoint_dir(tmp_path / "lora", marker="lora")
    (local / "adapter_config.json").write_text("{}")
    store_checkpoint(session_factory, settings, job_id, 4, local)
    first = client.post(f"/v1/jobs/{job_id}/checkpoints/4/merge", headers=auth)
    assert (first.status_code, first.json()["merge_status"], first.json()["is_adapter"]) == (202, "queued", True)
    with session_factory() as session:
        assert merges.claim_merge(session=session, job_id=job_id, step=4) is not None
        assert merges.claim_merge(session=session, job_id=job_id, step=4) is not None  # a redelivery re-runs it
    # The worker died mid-merge: asking again sends it again (a merge is idempotent).
    again = client.post(f"/v1/jobs/{job_id}/checkpoints/4/merge", headers=auth)
    assert again.json()["merge_status"] == "running" and queue.merges == [(job_id, 4), (job_id, 4)]
    with session_factory() as session:
        merges.finish_merge(session=session, job_id=job_id, step=4, error="OSError: disk full")
    assert client.get(f"/v1/jobs/{job_id}/checkpoints/4", headers=auth).json()["merge_status"] == "failed"
    events = client.get(f"/v1/jobs/{job_id}/events", headers=auth).json()["data"]
    assert [(e["type"], e["level"]) for e in events][-1] == ("merge", "error") and "disk full" in events[-1]["message"]
    failed_download = client.get(
        f"/v1/jobs/{job_id}/checkpoints/4/download", params={"variant": "merged"}, headers=auth
    )
    assert failed_download.status_code == 409 and "merge status: failed" in failed_download.json()["detail"]
    assert client.post(f"/v1/jobs/{job_id}/checkpoints/4/merge", headers=auth).json()["merge_status"] == "queued"
    with session_factory() as session:
        merges.claim_merge(session=session, job_id=job_id, step=4)
        merges.finish_merge(session=session, job_id=job_id, step=4, error=None)
        # The step is re-run after a resume and checkpointed again: the old merge is dropped with its files.
        store = make_store(settings)
        (tmp_path / "merged").mkdir()
        (tmp_path / "merged" / "config.json").write_text("{}")
        store.put_dir(f"{artifacts.checkpoint_key(job_id, 4)}/merged", tmp_path / "merged")
        artifacts.register_checkpoint(session=session, store=store, job_id=job_id, step=4, local_dir=local, metrics={})
    assert client.get(f"/v1/jobs/{job_id}/checkpoints/4", headers=auth).json()["merge_status"] is None
    assert not make_store(settings).list(f"{artifacts.checkpoint_key(job_id, 4)}/merged")


def test_progress_reports_throughput(client, auth, session_factory):
    job_id = running_job(client, auth, session_factory)
    with session_factory() as session:
        runs.record_step(
            session=session,
            job_id=job_id,
            worker_id="w1",
            step=1,
            metrics={"throughput/tokens_per_s": 1234.5},
            step_seconds=2.0,
        )
    progress = client.get(f"/v1/jobs/{job_id}", headers=auth).json()["progress"]
    assert progress == {"step": 1, "total_steps": 3, "fraction": 1 / 3, "eta_seconds": 4.0, "tokens_per_s": 1234.5}


def test_on_demand_evaluation_needs_a_checkpoint_and_data(client, auth, session_factory, settings, tmp_path, queue):
    job_id = running_job(client, auth, session_factory)
    assert client.post(f"/v1/jobs/{job_id}/evaluations", json={}, headers=auth).status_code == 409
    store_checkpoint(session_factory, settings, job_id, 5, make_checkpoint_dir(tmp_path / "ck", "5"))
    no_data = client.post(f"/v1/jobs/{job_id}/evaluations", json={}, headers=auth)
    assert no_data.status_code == 422 and no_data.json()["errors"][0]["field"] == "rows"
    bad = client.post(
        f"/v1/jobs/{job_id}/evaluations",
        json={"rows": [{"prompt": "x", "answer": "1"}], "samples_per_prompt": 4},
        headers=auth,
    )
    assert bad.status_code == 422  # greedy decoding with several samples
    created = client.post(
        f"/v1/jobs/{job_id}/evaluations",
        json={"rows": [{"prompt": "x", "answer": "1"}], "greedy": False, "samples_per_prompt": 4},
        headers=auth,
    )
    assert created.status_code == 202, created.text
    body = created.json()
    assert body["status"] == "queued" and body["step"] == 5 and body["trigger"] == "on_demand"
    assert queue.evaluations == [uuid.UUID(body["id"])]
    assert [e["id"] for e in client.get(f"/v1/jobs/{job_id}/evaluations", headers=auth).json()["data"]] == [body["id"]]


def test_artifacts_of_another_tenant_are_invisible(client, auth, other_auth, session_factory):
    job_id = running_job(client, auth, session_factory)
    for path in ["events", "samples", "checkpoints", "checkpoints/1", "checkpoints/1/download", "evaluations"]:
        assert client.get(f"/v1/jobs/{job_id}/{path}", headers=other_auth).status_code == 404, path
    assert client.post(f"/v1/jobs/{job_id}/evaluations", json={}, headers=other_auth).status_code == 404
    assert client.post(f"/v1/jobs/{job_id}/checkpoints/1/merge", headers=other_auth).status_code == 404
    sse = client.get(f"/v1/jobs/{job_id}/events", headers=other_auth | {"Accept": "text/event-stream"})
    assert sse.status_code == 404


@pytest.mark.timeout(60)
def test_the_event_stream_follows_a_running_job_live(client, auth, session_factory):
    job_id = running_job(client, auth, session_factory)

    def step(n: int) -> None:
        with session_factory() as session:
            runs.record_step(
                session=session, job_id=job_id, worker_id="w1", step=n, metrics={"loss": 1.0 / n}, step_seconds=0.1
            )

    step(1)
    seen: list[tuple[str, object]] = []
    headers = auth | {"Accept": "text/event-stream"}
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as stream:
        event_type = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event_type = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event_type in ("metrics", "status"):
                data = json.loads(line.removeprefix("data:"))["data"]
                seen.append((event_type, data.get("step", data.get("status"))))
                if seen[-1] == ("metrics", 1):
                    step(2)  # written while the stream is open: it must arrive without a new request
                elif seen[-1] == ("metrics", 2):
                    with session_factory() as session:
                        runs.finish_job(session=session, job_id=job_id, worker_id="w1", to=JobStatus.succeeded)
    expected = [("status", "queued"), ("status", "running"), ("metrics", 1), ("metrics", 2), ("status", "succeeded")]
    assert seen == expected


def test_queue_outage_fails_evaluation_and_merge_requests_visibly(client, auth, session_factory, settings, tmp_path):
    class BrokenQueue:
        def enqueue_evaluation(self, evaluation_id: uuid.UUID) -> None:
            raise ConnectionError("broker down")

        def enqueue_merge(self, job_id: uuid.UUID, step: int) -> None:
            raise ConnectionError("broker down")

    job_id = running_job(client, auth, session_factory)
    local = make_checkpoint_dir(tmp_path / "lora", marker="lora")
    (local / "adapter_config.json").write_text("{}")
    store_checkpoint(session_factory, settings, job_id, 4, local)
    client.app.state.queue = BrokenQueue()
    evaluation = client.post(f"/v1/jobs/{job_id}/evaluations", json={"rows": [{"prompt": "x"}]}, headers=auth)
    assert evaluation.status_code == 503 and evaluation.headers["retry-after"] == "30"
    [stored] = client.get(f"/v1/jobs/{job_id}/evaluations", headers=auth).json()["data"]
    assert stored["status"] == "failed" and stored["error"]["code"] == "enqueue_failed"
    merge = client.post(f"/v1/jobs/{job_id}/checkpoints/4/merge", headers=auth)
    assert merge.status_code == 503 and merge.json()["code"] == "queue_unavailable"
    assert client.get(f"/v1/jobs/{job_id}/checkpoints/4", headers=auth).json()["merge_status"] is None


def test_an_unknown_event_type_filter_is_a_422_naming_it(client, auth):
    """Event types are a closed set: filtering on one that does not exist names it (it was a 500)."""
    job = client.post("/v1/jobs", json=tiny_spec(), headers=auth).json()
    response = client.get(f"/v1/jobs/{job['id']}/events", params={"type": ["status", "\x12weird"]}, headers=auth)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"].startswith("type")
    known = client.get(f"/v1/jobs/{job['id']}/events", params={"type": "status"}, headers=auth)
    assert known.status_code == 200 and {e["type"] for e in known.json()["data"]} == {"status"}
