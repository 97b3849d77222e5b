"""Reproducibility: every checkpoint carries a manifest; a job submitted from it reproduces the original's
metrics exactly on CPU; dry_run answers the resolved spec without creating a job."""

import hashlib

from app.services.manifest import canonical_hash
from tests.conftest import tiny_spec
from workers.engine.metrics import is_wall_clock


def comparable(client, auth, job_id: str) -> list[dict[str, float]]:
    rows = client.get(f"/v1/jobs/{job_id}/metrics", headers=auth).json()["data"]
    return [{k: v for k, v in row["values"].items() if not is_wall_clock(k)} for row in rows]


def spec_with_a_stored_reward(client, auth) -> dict:
    reward = client.post(
        "/v1/rewards", json={"name": "digit", "spec": {"type": "regex", "pattern": "[0-9]"}}, headers=auth
    )
    rewards = [
        {"type": "exact_match", "field": "answer"},
        {"type": "ref", "reward_id": reward.json()["id"], "weight": 0.5},
    ]
    return tiny_spec(max_steps=4, seed=11) | {"rewards": rewards, "checkpoint": {"every": 2, "keep_last": 2}}


def test_manifest_on_every_checkpoint_and_a_reproduced_run_matches_exactly(client, auth, other_auth, worker, settings):
    spec = spec_with_a_stored_reward(client, auth)
    original = client.post("/v1/jobs", json=spec, headers=auth).json()
    assert worker.train(original["id"]).status == "succeeded"

    for step in (2, 4):
        response = client.get(f"/v1/jobs/{original['id']}/checkpoints/{step}/manifest", headers=auth)
        assert response.status_code == 200, response.text
    manifest = response.json()
    assert manifest["step"] == 4 and manifest["seed"] == 11 and manifest["ranks"] == 1 and manifest["device"] == "cpu"
    assert manifest["spec"] == original["spec"]  # resolved: defaults filled, the reference pinned
    assert manifest["dataset"] == {"hash": canonical_hash(spec["dataset"]["rows"]), "rows": 10, "dataset_id": None}
    inline, stored = manifest["rewards"]
    assert inline["type"] == "exact_match" and inline["hash"].startswith("sha256:")
    assert stored["version"] == 1 and stored["name"] == "digit"
    assert stored["hash"] == canonical_hash({"type": "regex", "pattern": "[0-9]", **_defaults(manifest)})
    weights = manifest["base_model"]["files"]["model.safetensors"]
    built = next((settings.data_dir / "models").glob("tiny-demo-*/model.safetensors"))
    assert weights == "sha256:" + hashlib.sha256(built.read_bytes()).hexdigest()
    assert manifest["packages"]["torch"] and manifest["packages"]["transformers"]
    assert client.get(f"/v1/jobs/{original['id']}/checkpoints/4/manifest", headers=other_auth).status_code == 404

    again = client.post("/v1/jobs", json={"reproduce": {"job_id": original["id"], "step": 4}}, headers=auth)
    assert again.status_code == 201, again.text
    assert again.json()["spec"] == original["spec"]
    assert worker.train(again.json()["id"]).status == "succeeded"
    assert comparable(client, auth, again.json()["id"]) == comparable(client, auth, original["id"])

    foreign = client.post("/v1/jobs", json={"reproduce": {"job_id": original["id"], "step": 4}}, headers=other_auth)
    assert foreign.status_code == 404
    missing = client.post("/v1/jobs", json={"reproduce": {"job_id": original["id"], "step": 3}}, headers=auth)
    assert missing.status_code == 404 and "checkpoint" in missing.json()["detail"]
    bad = client.post("/v1/jobs", json={"reproduce": {"job_id": original["id"]}}, headers=auth)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "reproduce.step"


def _defaults(manifest: dict) -> dict:
    """The stored version's spec as the server keeps it (its defaults filled)."""
    resolved = manifest["spec"]["rewards"][1]["resolved"]
    return {k: v for k, v in resolved.items() if k not in ("type", "pattern")}


def test_dry_run_answers_the_resolved_spec_and_creates_nothing(client, auth):
    spec = spec_with_a_stored_reward(client, auth)
    response = client.post("/v1/jobs", params={"dry_run": "true"}, json=spec, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "job.dry_run" and body["dataset"] == {
        "rows": 10,
        "hash": canonical_hash(spec["dataset"]["rows"]),
    }
    assert body["spec"]["grpo"]["beta"] == 0.0 and body["spec"]["rewards"][1]["version"] == 1  # defaults, pinned
    assert body["spec"]["rewards"][1]["resolved"]["pattern"] == "[0-9]"
    assert client.get("/v1/jobs", headers=auth).json()["data"] == []
    bad = client.post("/v1/jobs", params={"dry_run": "true"}, json=spec | {"grpo": {"group_size": 0}}, headers=auth)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "grpo.group_size"
