"""API test helpers: JSONL uploads, a submitted (or claimed) job, a sample row, a checkpoint directory."""

import json
import uuid

from fastapi.testclient import TestClient

from app.core.storage import make_store
from app.services import artifacts, runs
from tests.utils.factories import tiny_spec

JSONL = {"Content-Type": "application/jsonl"}


def jsonl(rows: list[object]) -> bytes:
    return b"\n".join(json.dumps(row).encode() for row in rows) + b"\n"


def submit(client: TestClient, auth: dict[str, str], **grpo: object) -> dict:
    response = client.post("/v1/jobs", json=tiny_spec(**grpo), headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def running_job(client, auth, session_factory, **grpo) -> uuid.UUID:
    job_id = uuid.UUID(submit(client, auth, **grpo)["id"])
    with session_factory() as session:
        runs.claim_job(session=session, job_id=job_id, worker_id="w1", max_attempts=3)
    return job_id


def sample(prompt_index: int, group_index: int) -> dict:
    return {
        "prompt_index": prompt_index,
        "group_index": group_index,
        "prompt": "3:",
        "completion": "3",
        "reward": 1.0,
        "components": {"exact_match": 1.0},
        "advantage": 0.5,
        "num_tokens": 2,
        "truncated": False,
    }


def make_checkpoint_dir(path, marker: str):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"marker": marker}))
    (path / "model.safetensors").write_bytes(b"\x01" * 1000)
    (path / "trainer_state.pt").write_bytes(b"\x02" * 300)
    (path / "COMPLETE").write_text("{}")
    return path


def store_checkpoint(session_factory, settings, job_id, step: int, local_dir) -> None:
    """Register (and store) `local_dir` as the job's checkpoint at `step`, as the worker's sink does."""
    with session_factory() as session:
        artifacts.register_checkpoint(
            session=session, store=make_store(settings), job_id=job_id, step=step, local_dir=local_dir, metrics={}
        )
