"""The API's operations as Call descriptions with the model their answer decodes to. Both clients send these,
so paths, parameters and which requests are creates (and get an Idempotency-Key) are written once."""

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from grpo_client._core import Call
from grpo_client.models import (
    Checkpoint,
    Dataset,
    Evaluation,
    Event,
    Job,
    Page,
    Reward,
    RewardTestResult,
    RewardVersion,
    Sample,
    StepMetrics,
)

Id = uuid.UUID | str
Operation = tuple[Call, Any]
JSONL = {"Content-Type": "application/jsonl"}


def _created(created_after: datetime | None, created_before: datetime | None) -> dict[str, Any]:
    return {"created_after": created_after, "created_before": created_before}


# --- jobs ---------------------------------------------------------------------------------------------
def submit_job(spec: dict[str, Any], idempotency_key: str | None = None) -> Operation:
    return Call("POST", "/v1/jobs", json=spec, create=True, idempotency_key=idempotency_key), Job


def reproduce_job(job_id: Id, step: int, idempotency_key: str | None = None) -> Operation:
    body = {"reproduce": {"job_id": str(job_id), "step": step}}
    return Call("POST", "/v1/jobs", json=body, create=True, idempotency_key=idempotency_key), Job


def dry_run_job(spec: dict[str, Any]) -> Operation:
    return Call("POST", "/v1/jobs", params={"dry_run": "true"}, json=spec), dict[str, Any]


def checkpoint_manifest(job_id: Id, step: int) -> Operation:
    return Call("GET", f"/v1/jobs/{job_id}/checkpoints/{step}/manifest"), dict[str, Any]


def preflight(spec: dict[str, Any], prompts: int | None = None) -> Operation:
    return Call("POST", "/v1/preflight", params={"prompts": prompts}, json=spec), dict[str, Any]


def get_job(job_id: Id) -> Operation:
    return Call("GET", f"/v1/jobs/{job_id}"), Job


def list_jobs(
    *,
    status: str | None = None,
    name: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Operation:
    params = {
        "status": status,
        "name": name,
        "limit": limit,
        "cursor": cursor,
        **_created(created_after, created_before),
    }
    return Call("GET", "/v1/jobs", params=params), Page[Job]


def cancel_job(job_id: Id) -> Operation:
    return Call("POST", f"/v1/jobs/{job_id}/cancel"), Job


def pause_job(job_id: Id) -> Operation:
    return Call("POST", f"/v1/jobs/{job_id}/pause"), Job


def resume_job(job_id: Id) -> Operation:
    return Call("POST", f"/v1/jobs/{job_id}/resume"), Job


def set_job_budget(job_id: Id, budget: dict[str, Any]) -> Operation:
    return Call("PATCH", f"/v1/jobs/{job_id}/budget", json=budget), Job


def job_metrics(
    job_id: Id,
    *,
    names: list[str] | None = None,
    step_gte: int | None = None,
    step_lte: int | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Operation:
    params: list[tuple[str, Any]] = [("name", name) for name in names or []]
    params += [("step_gte", step_gte), ("step_lte", step_lte), ("limit", limit), ("cursor", cursor)]
    return Call("GET", f"/v1/jobs/{job_id}/metrics", params=params), Page[StepMetrics]


def job_events(
    job_id: Id,
    *,
    cursor: str | None = None,
    after: int | None = None,
    types: list[str] | None = None,
    limit: int | None = None,
) -> Operation:
    """A page of events: `cursor` is the previous page's next_cursor; `after` (an event id) also works."""
    params = [("type", kind) for kind in types or []] + [("cursor", cursor), ("after", after), ("limit", limit)]
    return Call("GET", f"/v1/jobs/{job_id}/events", params=params), Page[Event]


def event_stream(job_id: Id, *, last_event_id: int | None, types: list[str] | None) -> Call:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    return Call("GET", f"/v1/jobs/{job_id}/events", params=[("type", kind) for kind in types or []], headers=headers)


def job_samples(
    job_id: Id, *, step: int | None = None, limit: int | None = None, cursor: str | None = None
) -> Operation:
    return Call("GET", f"/v1/jobs/{job_id}/samples", params={"step": step, "limit": limit, "cursor": cursor}), Page[
        Sample
    ]


def list_checkpoints(job_id: Id, *, limit: int | None = None, cursor: str | None = None) -> Operation:
    return Call("GET", f"/v1/jobs/{job_id}/checkpoints", params={"limit": limit, "cursor": cursor}), Page[Checkpoint]


def get_checkpoint(job_id: Id, step: int) -> Operation:
    return Call("GET", f"/v1/jobs/{job_id}/checkpoints/{step}"), Checkpoint


def download_checkpoint(job_id: Id, step: int, variant: str) -> Call:
    return Call("GET", f"/v1/jobs/{job_id}/checkpoints/{step}/download", params={"variant": variant})


def request_evaluation(job_id: Id, request: dict[str, Any], idempotency_key: str | None = None) -> Operation:
    call = Call("POST", f"/v1/jobs/{job_id}/evaluations", json=request, create=True, idempotency_key=idempotency_key)
    return call, Evaluation


def list_evaluations(
    job_id: Id, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
) -> Operation:
    params = {"status": status, "limit": limit, "cursor": cursor}
    return Call("GET", f"/v1/jobs/{job_id}/evaluations", params=params), Page[Evaluation]


# --- datasets -----------------------------------------------------------------------------------------
def upload_dataset(name: str, rows: bytes | Path, idempotency_key: str | None = None) -> Operation:
    content = rows.read_bytes() if isinstance(rows, Path) else rows
    call = Call(
        "POST",
        "/v1/datasets",
        params={"name": name},
        content=content,
        headers=dict(JSONL),
        create=True,
        idempotency_key=idempotency_key,
    )
    return call, Dataset


def get_dataset(dataset_id: Id) -> Operation:
    return Call("GET", f"/v1/datasets/{dataset_id}"), Dataset


def list_datasets(*, name: str | None = None, limit: int | None = None, cursor: str | None = None) -> Operation:
    return Call("GET", "/v1/datasets", params={"name": name, "limit": limit, "cursor": cursor}), Page[Dataset]


# --- rewards ------------------------------------------------------------------------------------------
def create_reward(
    name: str,
    spec: dict[str, Any],
    *,
    description: str = "",
    validation_sample: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Operation:
    body = {"name": name, "spec": spec, "description": description, "validation_sample": validation_sample}
    return Call("POST", "/v1/rewards", json=body, create=True, idempotency_key=idempotency_key), Reward


def get_reward(reward_id: Id) -> Operation:
    return Call("GET", f"/v1/rewards/{reward_id}"), Reward


def list_rewards(*, name: str | None = None, limit: int | None = None, cursor: str | None = None) -> Operation:
    return Call("GET", "/v1/rewards", params={"name": name, "limit": limit, "cursor": cursor}), Page[Reward]


def add_reward_version(
    reward_id: Id,
    spec: dict[str, Any],
    *,
    validation_sample: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Operation:
    body = {"spec": spec, "validation_sample": validation_sample}
    call = Call("POST", f"/v1/rewards/{reward_id}/versions", json=body, create=True, idempotency_key=idempotency_key)
    return call, RewardVersion


def get_reward_version(reward_id: Id, version: int) -> Operation:
    return Call("GET", f"/v1/rewards/{reward_id}/versions/{version}"), RewardVersion


def test_reward(reward_id: Id, samples: list[dict[str, Any]], version: int | None = None) -> Operation:
    body = {"samples": samples, "version": version}
    return Call("POST", f"/v1/rewards/{reward_id}/test", json=body), RewardTestResult


def test_inline_reward(spec: dict[str, Any], samples: list[dict[str, Any]]) -> Operation:
    return Call("POST", "/v1/rewards:test", json={"reward": spec, "samples": samples}), RewardTestResult


def delete_reward(reward_id: Id) -> Operation:
    return Call("DELETE", f"/v1/rewards/{reward_id}"), None


# --- webhooks -----------------------------------------------------------------------------------------
def create_webhook(url: str, event_types: list[str] | None = None, description: str = "") -> Operation:
    body = {"url": url, "event_types": event_types or [], "description": description}
    return Call("POST", "/v1/webhooks", json=body), dict[str, Any]


def list_webhooks() -> Operation:
    return Call("GET", "/v1/webhooks"), dict[str, Any]


def delete_webhook(webhook_id: Id) -> Operation:
    return Call("DELETE", f"/v1/webhooks/{webhook_id}"), None


def webhook_deliveries(webhook_id: Id) -> Operation:
    return Call("GET", f"/v1/webhooks/{webhook_id}/deliveries"), dict[str, Any]


def redeliver(webhook_id: Id, delivery_id: Id) -> Operation:
    return Call("POST", f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"), dict[str, Any]
