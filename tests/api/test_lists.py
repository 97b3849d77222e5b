"""Every list pages with a stable cursor and filters (name, created range, status/type/step where they apply)."""

import time
import uuid
from datetime import UTC, datetime

from app.core.storage import make_store
from app.services import artifacts, runs
from tests.utils.api import JSONL, jsonl, make_checkpoint_dir, running_job


def all_pages(client, path: str, auth: dict, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        page = client.get(path, params=params | ({"cursor": cursor} if cursor else {}), headers=auth).json()
        items += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_datasets_and_rewards_page_and_filter_by_name_and_time(client, auth):
    created = []
    for name in ["train-a", "eval-b", "train-c"]:
        dataset = client.post("/v1/datasets", params={"name": name}, content=jsonl([{"p": 1}]), headers=auth | JSONL)
        reward = client.post("/v1/rewards", json={"name": name, "spec": {"type": "exact_match"}}, headers=auth)
        created.append((dataset.json(), reward.json()))
        time.sleep(0.01)
    middle = datetime.fromisoformat(created[1][0]["created_at"])
    for index, path in enumerate(["/v1/datasets", "/v1/rewards"]):
        ids = [item[index]["id"] for item in created]
        assert [d["id"] for d in all_pages(client, path, auth, limit=1)] == ids[::-1]  # newest first, no repeats
        assert [d["id"] for d in all_pages(client, path, auth, name="train")] == [ids[2], ids[0]]
        after = all_pages(client, path, auth, created_after=middle.isoformat())
        before = all_pages(client, path, auth, created_before=middle.isoformat())
        assert [d["id"] for d in after] == [ids[2], ids[1]] and [d["id"] for d in before] == [ids[0]]


def test_checkpoints_and_evaluations_page_and_filter(client, auth, session_factory, settings, tmp_path):
    job_id = running_job(client, auth, session_factory)
    with session_factory() as session:
        for step in (10, 20, 30):
            artifacts.register_checkpoint(
                session=session,
                store=make_store(settings),
                job_id=job_id,
                step=step,
                local_dir=make_checkpoint_dir(tmp_path / str(step), str(step)),
                metrics={},
            )
            artifacts.record_scheduled_evaluation(
                session=session, job_id=job_id, step=step, metrics={"eval/accuracy": step / 100}, config={}
            )
    base = f"/v1/jobs/{job_id}"
    assert [c["step"] for c in all_pages(client, f"{base}/checkpoints", auth, limit=2)] == [10, 20, 30]
    assert [c["step"] for c in all_pages(client, f"{base}/checkpoints", auth, step_gte=15, step_lte=30)] == [20, 30]
    assert [e["step"] for e in all_pages(client, f"{base}/evaluations", auth, limit=1)] == [10, 20, 30]
    assert all_pages(client, f"{base}/evaluations", auth, trigger="on_demand") == []
    assert len(all_pages(client, f"{base}/evaluations", auth, status="succeeded", trigger="scheduled")) == 3
    future = datetime(2999, 1, 1, tzinfo=UTC).isoformat()
    assert all_pages(client, f"{base}/checkpoints", auth, created_after=future) == []
    assert client.get(f"{base}/evaluations", params={"status": "exploded"}, headers=auth).status_code == 422


def test_events_filter_by_type(client, auth, session_factory):
    job_id = running_job(client, auth, session_factory)
    with session_factory() as session:
        for step in (1, 2):
            runs.record_step(
                session=session, job_id=job_id, worker_id="w1", step=step, metrics={"loss": 1.0}, step_seconds=0.1
            )
    page = client.get(f"/v1/jobs/{job_id}/events", params={"type": "metrics"}, headers=auth).json()
    assert [e["step"] for e in page["data"]] == [1, 2]
    both = client.get(f"/v1/jobs/{job_id}/events", params=[("type", "metrics"), ("type", "status")], headers=auth)
    assert [e["type"] for e in both.json()["data"]] == ["status", "status", "metrics", "metrics"]
    assert client.get(f"/v1/jobs/{uuid.uuid4()}/events", params={"type": "metrics"}, headers=auth).status_code == 404
