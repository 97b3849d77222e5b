"""One pagination contract for every list (issue 14 item 9, issue 15 item 6): each list endpoint in the
OpenAPI document reads `?cursor=`, returns `{data, next_cursor}`, and walks to its end through next_cursor."""

import json

from app.core.storage import make_store
from app.services import artifacts, runs
from tests.utils.api import JSONL, jsonl, make_checkpoint_dir, running_job, sample
from tests.utils.factories import tiny_spec

MAX_PAGES = 200  # a list that ignores its cursor returns page 1 forever; this bounds the walk


def list_endpoints(client) -> list[str]:
    """GET paths whose 200 answer is a list response (a schema with `data` and `next_cursor`)."""
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    found = []
    for path, operations in document["paths"].items():
        get = operations.get("get")
        if get is None:
            continue
        content = get["responses"].get("200", {}).get("content", {}).get("application/json", {})
        ref = content.get("schema", {}).get("$ref", "")
        properties = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
        if {"data", "next_cursor"} <= properties.keys():
            parameters = {p["name"] for p in get.get("parameters", []) if p["in"] == "query"}
            assert {"cursor", "limit"} <= parameters, f"{path} does not read ?cursor= and ?limit="
            found.append(path)
    return found


def walk(client, auth, path: str) -> list[dict]:
    items, cursor = [], None
    for _ in range(MAX_PAGES):
        response = client.get(path, params={"limit": 1} | ({"cursor": cursor} if cursor else {}), headers=auth)
        assert response.status_code == 200, (path, response.text)
        page = response.json()
        assert set(page) == {"data", "next_cursor"}, path
        assert len(page["data"]) <= 1, path
        items += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError(f"{path}: next_cursor never ended after {MAX_PAGES} pages")


def seed(client, auth, session_factory, settings, tmp_path) -> dict[str, str]:
    """At least three items in every list, and the values of the path parameters."""
    for index in range(3):
        client.post(
            "/v1/datasets", params={"name": f"d{index}"}, content=jsonl([{"prompt": "p"}]), headers=auth | JSONL
        )
        client.post("/v1/rewards", json={"name": f"r{index}", "spec": {"type": "exact_match"}}, headers=auth)
    job_id = running_job(client, auth, session_factory)
    with session_factory() as session:
        for step in (1, 2, 3):
            runs.record_step(
                session=session,
                job_id=job_id,
                worker_id="w1",
                step=step,
                metrics={"loss": float(step)},
                step_seconds=0.1,
                samples=[sample(0, 0), sample(0, 1)],
            )
            artifacts.register_checkpoint(
                session=session,
                store=make_store(settings),
                job_id=job_id,
                step=step,
                local_dir=make_checkpoint_dir(tmp_path / str(step), str(step)),
                metrics={},
            )
            artifacts.record_scheduled_evaluation(session=session, job_id=job_id, step=step, metrics={}, config={})
    for _ in range(2):
        client.post("/v1/jobs", json=tiny_spec(), headers=auth)
    return {"job_id": str(job_id)}


def test_every_list_walks_to_its_end_through_next_cursor(client, auth, session_factory, settings, tmp_path):
    params = seed(client, auth, session_factory, settings, tmp_path)
    endpoints = list_endpoints(client)
    assert len(endpoints) >= 8, endpoints  # jobs, datasets, rewards, events, metrics, samples, checkpoints, evals
    for template in endpoints:
        path = template.format(**params)
        walked = walk(client, auth, path)
        assert len(walked) >= 2, f"{template}: seed() gives it too few items to page"
        everything = client.get(path, params={"limit": 100}, headers=auth).json()
        assert everything["next_cursor"] is None, template
        assert [json.dumps(i, sort_keys=True) for i in walked] == [
            json.dumps(i, sort_keys=True) for i in everything["data"]
        ], f"{template}: paging skipped, repeated or reordered items"


def test_events_keep_accepting_after_as_an_alias(client, auth, session_factory):
    job_id = running_job(client, auth, session_factory)
    events = client.get(f"/v1/jobs/{job_id}/events", headers=auth).json()["data"]
    after = client.get(f"/v1/jobs/{job_id}/events", params={"after": events[0]["id"]}, headers=auth).json()
    assert [e["id"] for e in after["data"]] == [e["id"] for e in events[1:]]


def test_a_cursor_from_another_list_shape_is_a_422_naming_cursor(client, auth, session_factory):
    job_id = running_job(client, auth, session_factory)
    jobs_page = client.get("/v1/jobs", headers=auth).json()
    assert jobs_page["next_cursor"] is None
    for path, cursor in [(f"/v1/jobs/{job_id}/events", "WyJ4Il0"), (f"/v1/jobs/{job_id}/metrics", "12")]:
        response = client.get(path, params={"cursor": cursor}, headers=auth)
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "cursor", response.text
