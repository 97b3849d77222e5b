"""The synchronous client.

from grpo_client import GrpoClient
with GrpoClient() as grpo:                      # GRPO_URL and GRPO_API_KEY from the environment
    job = grpo.jobs.submit(spec)                # an Idempotency-Key is added: retries cannot submit twice
    job = grpo.jobs.wait(job.id)                # raises JobFailed if it fails or is cancelled
    for event in grpo.jobs.stream_events(job.id):
        print(event.type, event.message)
"""

from __future__ import annotations  # annotations name `list`, which the resources define as a method

import builtins
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from grpo_client import _calls as calls
from grpo_client._core import (
    TRANSPORT_ERRORS,
    Call,
    Settings,
    SseParser,
    connection_error,
    decode,
    next_wait_s,
    raise_for,
)
from grpo_client.errors import JobFailed
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


class GrpoClient:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        http: httpx.Client | None = None,
        **options: Any,
    ) -> None:
        """`options`: timeout_s, max_retries, backoff_s, max_wait_s (see grpo_client._core.Settings)."""
        self.settings = Settings.from_env(base_url, api_key, **options)
        self._http = http or httpx.Client(
            base_url=self.settings.base_url, headers=self.settings.headers(), timeout=self.settings.timeout_s
        )
        self.jobs = Jobs(self)
        self.datasets = Datasets(self)
        self.rewards = Rewards(self)
        self.webhooks = Webhooks(self)

    def __enter__(self) -> GrpoClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, operation: calls.Operation) -> Any:
        call, model = operation
        return decode(self.request(call), model)

    def request(self, call: Call, *, stream: bool = False) -> httpx.Response:
        """Send with retries: 429/503 honouring Retry-After, lost connections when the call is retry-safe."""
        for attempt in itertools.count():
            try:
                request = self._http.build_request(call.method, call.path, **call.request_kwargs())
                response = self._http.send(request, stream=stream)
            except TRANSPORT_ERRORS as exc:
                wait = next_wait_s(self.settings, attempt, response=None) if call.retry_safe else None
                if wait is None:
                    raise connection_error(call, exc) from exc
                time.sleep(wait)
                continue
            wait = next_wait_s(self.settings, attempt, response=response)
            if wait is None:
                return response
            response.close()
            time.sleep(wait)
        raise AssertionError("unreachable")


class _Resource:
    def __init__(self, client: GrpoClient) -> None:
        self._client = client

    def _pages(self, build: Any, **params: Any) -> Iterator[Any]:
        cursor = None
        while True:
            page = self._client.send(build(**params, cursor=cursor))
            yield from page.data
            cursor = page.next_cursor
            if cursor is None:
                return


class Jobs(_Resource):
    def submit(self, spec: dict[str, Any], *, idempotency_key: str | None = None) -> Job:
        return self._client.send(calls.submit_job(spec, idempotency_key))  # type: ignore[no-any-return]

    def reproduce(self, job_id: calls.Id, step: int, *, idempotency_key: str | None = None) -> Job:
        """A new job with the spec of that checkpoint's manifest (same seed, data, rewards and model)."""
        return self._client.send(calls.reproduce_job(job_id, step, idempotency_key))  # type: ignore[no-any-return]

    def dry_run(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The spec resolved as the server would run it (defaults, pinned rewards, dataset hash); no job."""
        return self._client.send(calls.dry_run_job(spec))  # type: ignore[no-any-return]

    def manifest(self, job_id: calls.Id, step: int) -> dict[str, Any]:
        """What produced a checkpoint: spec, data and weight hashes, reward versions, seed, packages, device."""
        return self._client.send(calls.checkpoint_manifest(job_id, step))  # type: ignore[no-any-return]

    def preflight(self, spec: dict[str, Any], *, prompts: int | None = None) -> dict[str, Any]:
        """A worker samples the base model on the spec and reports rewards, ties, graders, lengths, estimates."""
        return self._client.send(calls.preflight(spec, prompts))  # type: ignore[no-any-return]

    def get(self, job_id: calls.Id) -> Job:
        return self._client.send(calls.get_job(job_id))  # type: ignore[no-any-return]

    def list(self, **filters: Any) -> Page[Job]:
        """One page; filters: status, name, created_after, created_before, limit, cursor."""
        return self._client.send(calls.list_jobs(**filters))  # type: ignore[no-any-return]

    def iterate(self, **filters: Any) -> Iterator[Job]:
        """Every matching job, newest first, across pages."""
        return self._pages(calls.list_jobs, **filters)

    def cancel(self, job_id: calls.Id) -> Job:
        return self._client.send(calls.cancel_job(job_id))  # type: ignore[no-any-return]

    def pause(self, job_id: calls.Id) -> Job:
        """Queued: paused at once; running: 'pausing' until its step ends and is checkpointed, then 'paused'."""
        return self._client.send(calls.pause_job(job_id))  # type: ignore[no-any-return]

    def resume(self, job_id: calls.Id) -> Job:
        """Queue a paused job again; it continues from its latest checkpoint."""
        return self._client.send(calls.resume_job(job_id))  # type: ignore[no-any-return]

    def set_budget(self, job_id: calls.Id, **budget: float) -> Job:
        """Replace the job's budget: wall_clock_s, device_hours, generated_tokens, reward_calls, reward_seconds."""
        return self._client.send(calls.set_job_budget(job_id, budget))  # type: ignore[no-any-return]

    def metrics(self, job_id: calls.Id, **filters: Any) -> Iterator[StepMetrics]:
        """Every step's metrics in step order; filters: names, step_gte, step_lte."""
        return self._pages(calls.job_metrics, job_id=job_id, **filters)

    def events(self, job_id: calls.Id, **filters: Any) -> Page[Event]:
        """One JSON page of events; filters: cursor (the previous next_cursor), types, limit (after: an event id)."""
        return self._client.send(calls.job_events(job_id, **filters))  # type: ignore[no-any-return]

    def stream_events(
        self, job_id: calls.Id, *, after: int | None = None, types: builtins.list[str] | None = None
    ) -> Iterator[Event]:
        """Follow the job live (Server-Sent Events) until it ends; a dropped connection resumes from
        the last event seen (Last-Event-ID), so nothing is missed or repeated."""
        last_id, attempt = after, 0
        while True:
            call = calls.event_stream(job_id, last_event_id=last_id, types=types)
            try:
                response = self._client.request(call, stream=True)
                try:
                    if not response.is_success:
                        response.read()
                        raise_for(response)
                    for event in SseParser().events(response.iter_lines()):
                        last_id, attempt = event.id, 0
                        yield event
                finally:
                    response.close()
                return  # the server closes the stream once the job has ended
            except TRANSPORT_ERRORS as exc:
                wait = next_wait_s(self._client.settings, attempt, response=None)
                if wait is None:
                    raise connection_error(call, exc) from exc
                attempt += 1
                time.sleep(wait)

    def wait(
        self, job_id: calls.Id, *, timeout_s: float | None = None, poll_s: float = 1.0, raise_on_failure: bool = True
    ) -> Job:
        """Poll until the job ends; JobFailed if it failed or was cancelled (unless raise_on_failure=False).
        A paused job (by you, a budget or a safeguard) is returned as it is: it waits for a person."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if job.status == "paused":
                return job
            if job.finished:
                if raise_on_failure and job.status != "succeeded":
                    reason = f": {job.error.code}: {job.error.message}" if job.error else ""
                    raise JobFailed(job, job.status, f"job {job.id} {job.status}{reason}")
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout_s} s")
            time.sleep(poll_s)

    def samples(self, job_id: calls.Id, **filters: Any) -> Iterator[Sample]:
        return self._pages(calls.job_samples, job_id=job_id, **filters)

    def checkpoints(self, job_id: calls.Id) -> Iterator[Checkpoint]:
        return self._pages(calls.list_checkpoints, job_id=job_id)

    def checkpoint(self, job_id: calls.Id, step: int) -> Checkpoint:
        return self._client.send(calls.get_checkpoint(job_id, step))  # type: ignore[no-any-return]

    def download_checkpoint(self, job_id: calls.Id, step: int, dest: Path, *, variant: str = "model") -> Path:
        """Stream the checkpoint's tar archive to `dest` (a file); returns it."""
        partial = dest.with_name(dest.name + ".partial")
        response = self._client.request(calls.download_checkpoint(job_id, step, variant), stream=True)
        try:
            if not response.is_success:
                response.read()
                raise_for(response)
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        finally:
            response.close()
        partial.replace(dest)  # a broken download never looks complete
        return dest

    def evaluate(self, job_id: calls.Id, *, idempotency_key: str | None = None, **request: Any) -> Evaluation:
        return self._client.send(calls.request_evaluation(job_id, request, idempotency_key))  # type: ignore[no-any-return]

    def evaluations(self, job_id: calls.Id, **filters: Any) -> Iterator[Evaluation]:
        return self._pages(calls.list_evaluations, job_id=job_id, **filters)


class Datasets(_Resource):
    def upload(self, name: str, rows: bytes | Path, *, idempotency_key: str | None = None) -> Dataset:
        """Upload JSONL (bytes, or a path to a .jsonl file)."""
        return self._client.send(calls.upload_dataset(name, rows, idempotency_key))  # type: ignore[no-any-return]

    def get(self, dataset_id: calls.Id) -> Dataset:
        return self._client.send(calls.get_dataset(dataset_id))  # type: ignore[no-any-return]

    def iterate(self, **filters: Any) -> Iterator[Dataset]:
        return self._pages(calls.list_datasets, **filters)


class Rewards(_Resource):
    def create(self, name: str, spec: dict[str, Any], **options: Any) -> Reward:
        """options: description, validation_sample, idempotency_key."""
        return self._client.send(calls.create_reward(name, spec, **options))  # type: ignore[no-any-return]

    def get(self, reward_id: calls.Id) -> Reward:
        return self._client.send(calls.get_reward(reward_id))  # type: ignore[no-any-return]

    def iterate(self, **filters: Any) -> Iterator[Reward]:
        return self._pages(calls.list_rewards, **filters)

    def add_version(self, reward_id: calls.Id, spec: dict[str, Any], **options: Any) -> RewardVersion:
        return self._client.send(calls.add_reward_version(reward_id, spec, **options))  # type: ignore[no-any-return]

    def version(self, reward_id: calls.Id, version: int) -> RewardVersion:
        return self._client.send(calls.get_reward_version(reward_id, version))  # type: ignore[no-any-return]

    def test(
        self, reward_id: calls.Id, samples: list[dict[str, Any]], *, version: int | None = None
    ) -> RewardTestResult:
        return self._client.send(calls.test_reward(reward_id, samples, version))  # type: ignore[no-any-return]

    def test_inline(self, spec: dict[str, Any], samples: list[dict[str, Any]]) -> RewardTestResult:
        return self._client.send(calls.test_inline_reward(spec, samples))  # type: ignore[no-any-return]

    def delete(self, reward_id: calls.Id) -> None:
        self._client.send(calls.delete_reward(reward_id))


class Webhooks(_Resource):
    """Job events POSTed to your endpoint, signed (docs/control.md shows the receiver's check)."""

    def create(self, url: str, *, event_types: list[str] | None = None, description: str = "") -> dict[str, Any]:
        """The endpoint, with its signing secret: shown only in this answer."""
        return self._client.send(calls.create_webhook(url, event_types, description))  # type: ignore[no-any-return]

    def list(self) -> builtins.list[dict[str, Any]]:
        return self._client.send(calls.list_webhooks())["data"]  # type: ignore[no-any-return]

    def delete(self, webhook_id: calls.Id) -> None:
        self._client.send(calls.delete_webhook(webhook_id))

    def deliveries(self, webhook_id: calls.Id) -> builtins.list[dict[str, Any]]:
        return self._client.send(calls.webhook_deliveries(webhook_id))["data"]  # type: ignore[no-any-return]

    def redeliver(self, webhook_id: calls.Id, delivery_id: calls.Id) -> dict[str, Any]:
        return self._client.send(calls.redeliver(webhook_id, delivery_id))  # type: ignore[no-any-return]
