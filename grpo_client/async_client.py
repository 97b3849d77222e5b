"""The asynchronous client: the same operations as GrpoClient, awaited.

async with AsyncGrpoClient() as grpo:
    job = await grpo.jobs.submit(spec)
    async for event in grpo.jobs.stream_events(job.id):
        ...
"""

from __future__ import annotations  # annotations name `list`, which the resources define as a method

import asyncio
import builtins
import itertools
import time
from collections.abc import AsyncIterator
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


class AsyncGrpoClient:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        **options: Any,
    ) -> None:
        self.settings = Settings.from_env(base_url, api_key, **options)
        self._http = http or httpx.AsyncClient(
            base_url=self.settings.base_url, headers=self.settings.headers(), timeout=self.settings.timeout_s
        )
        self.jobs = AsyncJobs(self)
        self.datasets = AsyncDatasets(self)
        self.rewards = AsyncRewards(self)

    async def __aenter__(self) -> AsyncGrpoClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, operation: calls.Operation) -> Any:
        call, model = operation
        return decode(await self.request(call), model)

    async def request(self, call: Call, *, stream: bool = False) -> httpx.Response:
        """Send with retries: 429/503 honouring Retry-After, lost connections when the call is retry-safe."""
        for attempt in itertools.count():
            try:
                request = self._http.build_request(call.method, call.path, **call.request_kwargs())
                response = await self._http.send(request, stream=stream)
                if not stream:
                    await response.aread()
            except TRANSPORT_ERRORS as exc:
                wait = next_wait_s(self.settings, attempt, response=None) if call.retry_safe else None
                if wait is None:
                    raise connection_error(call, exc) from exc
                await asyncio.sleep(wait)
                continue
            wait = next_wait_s(self.settings, attempt, response=response)
            if wait is None:
                return response
            await response.aclose()
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")


class _AsyncResource:
    def __init__(self, client: AsyncGrpoClient) -> None:
        self._client = client

    async def _pages(self, build: Any, **params: Any) -> AsyncIterator[Any]:
        cursor = None
        while True:
            page = await self._client.send(build(**params, cursor=cursor))
            for item in page.data:
                yield item
            cursor = page.next_cursor
            if cursor is None:
                return


class AsyncJobs(_AsyncResource):
    async def submit(self, spec: dict[str, Any], *, idempotency_key: str | None = None) -> Job:
        return await self._client.send(calls.submit_job(spec, idempotency_key))  # type: ignore[no-any-return]

    async def get(self, job_id: calls.Id) -> Job:
        return await self._client.send(calls.get_job(job_id))  # type: ignore[no-any-return]

    async def list(self, **filters: Any) -> Page[Job]:
        return await self._client.send(calls.list_jobs(**filters))  # type: ignore[no-any-return]

    def iterate(self, **filters: Any) -> AsyncIterator[Job]:
        return self._pages(calls.list_jobs, **filters)

    async def cancel(self, job_id: calls.Id) -> Job:
        return await self._client.send(calls.cancel_job(job_id))  # type: ignore[no-any-return]

    async def pause(self, job_id: calls.Id) -> Job:
        return await self._client.send(calls.pause_job(job_id))  # type: ignore[no-any-return]

    async def reproduce(self, job_id: calls.Id, step: int, *, idempotency_key: str | None = None) -> Job:
        return await self._client.send(calls.reproduce_job(job_id, step, idempotency_key))  # type: ignore[no-any-return]

    async def dry_run(self, spec: dict[str, Any]) -> dict[str, Any]:
        return await self._client.send(calls.dry_run_job(spec))  # type: ignore[no-any-return]

    async def manifest(self, job_id: calls.Id, step: int) -> dict[str, Any]:
        return await self._client.send(calls.checkpoint_manifest(job_id, step))  # type: ignore[no-any-return]

    async def preflight(self, spec: dict[str, Any], *, prompts: int | None = None) -> dict[str, Any]:
        return await self._client.send(calls.preflight(spec, prompts))  # type: ignore[no-any-return]

    async def resume(self, job_id: calls.Id) -> Job:
        return await self._client.send(calls.resume_job(job_id))  # type: ignore[no-any-return]

    async def set_budget(self, job_id: calls.Id, **budget: float) -> Job:
        return await self._client.send(calls.set_job_budget(job_id, budget))  # type: ignore[no-any-return]

    def metrics(self, job_id: calls.Id, **filters: Any) -> AsyncIterator[StepMetrics]:
        return self._pages(calls.job_metrics, job_id=job_id, **filters)

    async def events(self, job_id: calls.Id, **filters: Any) -> Page[Event]:
        return await self._client.send(calls.job_events(job_id, **filters))  # type: ignore[no-any-return]

    async def stream_events(
        self, job_id: calls.Id, *, after: int | None = None, types: builtins.list[str] | None = None
    ) -> AsyncIterator[Event]:
        """Follow the job live until it ends, resuming after a dropped connection (Last-Event-ID)."""
        last_id, attempt = after, 0
        while True:
            call = calls.event_stream(job_id, last_event_id=last_id, types=types)
            try:
                response = await self._client.request(call, stream=True)
                try:
                    if not response.is_success:
                        await response.aread()
                        raise_for(response)
                    parser = SseParser()
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is not None:
                            last_id, attempt = event.id, 0
                            yield event
                finally:
                    await response.aclose()
                return
            except TRANSPORT_ERRORS as exc:
                wait = next_wait_s(self._client.settings, attempt, response=None)
                if wait is None:
                    raise connection_error(call, exc) from exc
                attempt += 1
                await asyncio.sleep(wait)

    async def wait(
        self, job_id: calls.Id, *, timeout_s: float | None = None, poll_s: float = 1.0, raise_on_failure: bool = True
    ) -> Job:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = await self.get(job_id)
            if job.status == "paused":  # it waits for a person: see Jobs.wait
                return job
            if job.finished:
                if raise_on_failure and job.status != "succeeded":
                    reason = f": {job.error.code}: {job.error.message}" if job.error else ""
                    raise JobFailed(job, job.status, f"job {job.id} {job.status}{reason}")
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout_s} s")
            await asyncio.sleep(poll_s)

    def samples(self, job_id: calls.Id, **filters: Any) -> AsyncIterator[Sample]:
        return self._pages(calls.job_samples, job_id=job_id, **filters)

    def checkpoints(self, job_id: calls.Id) -> AsyncIterator[Checkpoint]:
        return self._pages(calls.list_checkpoints, job_id=job_id)

    async def checkpoint(self, job_id: calls.Id, step: int) -> Checkpoint:
        return await self._client.send(calls.get_checkpoint(job_id, step))  # type: ignore[no-any-return]

    async def download_checkpoint(self, job_id: calls.Id, step: int, dest: Path, *, variant: str = "model") -> Path:
        partial = dest.with_name(dest.name + ".partial")
        response = await self._client.request(calls.download_checkpoint(job_id, step, variant), stream=True)
        try:
            if not response.is_success:
                await response.aread()
                raise_for(response)
            with partial.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
        finally:
            await response.aclose()
        partial.replace(dest)
        return dest

    async def evaluate(self, job_id: calls.Id, *, idempotency_key: str | None = None, **request: Any) -> Evaluation:
        return await self._client.send(calls.request_evaluation(job_id, request, idempotency_key))  # type: ignore[no-any-return]

    def evaluations(self, job_id: calls.Id, **filters: Any) -> AsyncIterator[Evaluation]:
        return self._pages(calls.list_evaluations, job_id=job_id, **filters)


class AsyncDatasets(_AsyncResource):
    async def upload(self, name: str, rows: bytes | Path, *, idempotency_key: str | None = None) -> Dataset:
        return await self._client.send(calls.upload_dataset(name, rows, idempotency_key))  # type: ignore[no-any-return]

    async def get(self, dataset_id: calls.Id) -> Dataset:
        return await self._client.send(calls.get_dataset(dataset_id))  # type: ignore[no-any-return]

    def iterate(self, **filters: Any) -> AsyncIterator[Dataset]:
        return self._pages(calls.list_datasets, **filters)


class AsyncRewards(_AsyncResource):
    async def create(self, name: str, spec: dict[str, Any], **options: Any) -> Reward:
        return await self._client.send(calls.create_reward(name, spec, **options))  # type: ignore[no-any-return]

    async def get(self, reward_id: calls.Id) -> Reward:
        return await self._client.send(calls.get_reward(reward_id))  # type: ignore[no-any-return]

    def iterate(self, **filters: Any) -> AsyncIterator[Reward]:
        return self._pages(calls.list_rewards, **filters)

    async def add_version(self, reward_id: calls.Id, spec: dict[str, Any], **options: Any) -> RewardVersion:
        return await self._client.send(calls.add_reward_version(reward_id, spec, **options))  # type: ignore[no-any-return]

    async def version(self, reward_id: calls.Id, version: int) -> RewardVersion:
        return await self._client.send(calls.get_reward_version(reward_id, version))  # type: ignore[no-any-return]

    async def test(
        self, reward_id: calls.Id, samples: list[dict[str, Any]], *, version: int | None = None
    ) -> RewardTestResult:
        return await self._client.send(calls.test_reward(reward_id, samples, version))  # type: ignore[no-any-return]

    async def test_inline(self, spec: dict[str, Any], samples: list[dict[str, Any]]) -> RewardTestResult:
        return await self._client.send(calls.test_inline_reward(spec, samples))  # type: ignore[no-any-return]

    async def delete(self, reward_id: calls.Id) -> None:
        await self._client.send(calls.delete_reward(reward_id))
