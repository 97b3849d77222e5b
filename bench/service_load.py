"""Load on the API over loopback, and the rate at which the worker's sink writes metric rows to PostgreSQL.

    python -m bench.service_load                          # PostgreSQL at 127.0.0.1:5432, the embedded broker
    python -m bench.service_load --broker-url redis://127.0.0.1:6382/3 --repeats 5

What it does, each phase repeated --repeats times (the CPU is shared: read the spread, not one number):
- starts the real API (one uvicorn process, default settings: JSON access log on) on a fresh PostgreSQL
  database, no worker, and a tenant with limits high enough that no submit is refused;
- drives it open-loop at a fixed rate with an async httpx loop: request i is due at t0 + i/rate and its
  latency is measured from that due time, so a slow server cannot slow the load down and hide its
  own queueing (no coordinated omission). Phases: GET /healthz (the peer: no auth, no database),
  GET /v1/jobs/{id} (status), POST /v1/jobs (submit: validation, insert, enqueue);
- ingestion: DatabaseSink.on_step (workers/reporting.py, what a worker calls every step: metrics upsert,
  samples, progress, event, cancel check, in one transaction) for --steps steps of --metrics-per-step
  metrics, in 1 and in --writers processes at once, against the peer: the same rows as one plain
  multi-row INSERT per step.
Targets (issue 7): status p99 < 50 ms at 200 req/s on a 2-core machine; ingestion >= 5,000 rows/s.
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, insert, text

from scripts.stack import admin, running_stack

DEFAULT_PG = "postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres"


def tiny_spec(index: int) -> dict[str, Any]:
    return {
        "name": f"bench-{index}",
        "model": {"source": "tiny-demo"},
        "dataset": {"rows": [{"prompt": f"copy {d}:", "answer": str(d)} for d in range(10)]},
        "rewards": [{"type": "exact_match", "field": "answer"}],
        "grpo": {"group_size": 4, "prompts_per_step": 2, "max_steps": 10, "max_new_tokens": 4},
    }


# --- HTTP load ----------------------------------------------------------------------------------------
async def fixed_rate(clients: list[httpx.AsyncClient], rate: float, seconds: float, request: Any) -> dict[str, Any]:
    """Request i is due at t0 + i/rate whatever happened before; its latency counts from that due time.

    Due requests wait in one queue served by one task per connection (each client has exactly one), so
    a backlog costs O(1) per request in the load generator rather than a scan of a shared pool."""
    loop = asyncio.get_running_loop()
    total = int(rate * seconds)
    start = loop.time() + 0.05
    due_requests: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    errors: dict[str, int] = {}

    async def connection(client: httpx.AsyncClient) -> None:
        while (item := await due_requests.get()) is not None:
            index, due = item
            try:
                response = await request(client, index)
                if response.status_code >= 400:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            latencies.append((loop.time() - due) * 1000)

    workers = [asyncio.create_task(connection(client)) for client in clients]
    for index in range(total):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        due_requests.put_nowait((index, due))
    for _ in workers:
        due_requests.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = loop.time() - start
    return {"requests": total, "achieved_rps": total / elapsed, "errors": errors, **percentiles(latencies)}


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": ordered[-1]}


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def http_phases(base_url: str, key: str, args: argparse.Namespace, api_pid: int) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"}
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, headers=headers, limits=one, timeout=30)
            )
            for _ in range(args.connections)
        ]
        client = clients[0]
        job_ids = [(await client.post("/v1/jobs", json=tiny_spec(i))).json()["id"] for i in range(50)]

        async def healthz(c: httpx.AsyncClient, _i: int) -> httpx.Response:
            return await c.get("/healthz")

        async def status(c: httpx.AsyncClient, i: int) -> httpx.Response:
            return await c.get(f"/v1/jobs/{job_ids[i % len(job_ids)]}")

        async def submit(c: httpx.AsyncClient, i: int) -> httpx.Response:
            return await c.post("/v1/jobs", json=tiny_spec(i), headers={"Idempotency-Key": uuid.uuid4().hex})

        phases = [
            ("healthz (peer)", healthz, args.status_rate),
            ("status", status, args.status_rate),
            ("submit", submit, args.submit_rate),
        ]
        results = []
        await fixed_rate(clients, args.status_rate, 2.0, status)  # warm-up: connections, caches
        for repeat in range(args.repeats):
            for name, request, rate in phases:
                api_cpu = process_cpu_s(api_pid)
                own_cpu = time.process_time()
                result = await fixed_rate(clients, rate, args.seconds, request)
                result |= {
                    "phase": name,
                    "repeat": repeat,
                    "rate": rate,
                    "api_cpu_per_s": (process_cpu_s(api_pid) - api_cpu) / args.seconds,
                    "loadgen_cpu_per_s": (time.process_time() - own_cpu) / args.seconds,
                }
                results.append(result)
                print(_http_line(result), flush=True)
        return results


def _http_line(r: dict[str, Any]) -> str:
    errors = f" errors={r['errors']}" if r["errors"] else ""
    return (
        f"  {r['phase']:<15} #{r['repeat']} {r['rate']:>5.0f}/s (got {r['achieved_rps']:6.1f}/s)  "
        f"p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  max {r['max_ms']:6.1f} ms  "
        f"cpu api {r['api_cpu_per_s']:.2f} loadgen {r['loadgen_cpu_per_s']:.2f} cores{errors}"
    )


# --- ingestion through the worker's sink ----------------------------------------------------------------
def _new_job(sessions: Any, tenant_id: uuid.UUID, index: int, *, claim: bool) -> uuid.UUID:
    from app.models import Job
    from app.schemas.job import JobStatus
    from app.services import runs

    with sessions() as session:
        job = Job(
            tenant_id=tenant_id,
            name=f"ingest-{index}",
            spec=tiny_spec(index),
            status=JobStatus.queued,
            total_steps=10**6,
        )
        session.add(job)
        session.commit()
        if claim:
            assert runs.claim_job(session=session, job_id=job.id, worker_id=f"bench-{index}", max_attempts=3)
        return job.id


def _sink_writer(database_url: str, tenant_id: str, index: int, steps: int, per_step: int, start: Any) -> float:
    """One 'worker': a claimed job and its DatabaseSink, writing `steps` steps. Returns its wall seconds."""
    from app.core.db import make_engine, make_session_factory
    from app.core.storage import LocalStore
    from app.schemas.job import JobSpec
    from workers.engine.interface import SampleRecord, StepReport
    from workers.reporting import MONITORED, DatabaseSink
    from workers.rewards import RewardMonitor

    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    job_id = _new_job(sessions, uuid.UUID(tenant_id), index, claim=True)
    spec = JobSpec.model_validate(tiny_spec(index))
    monitor = RewardMonitor(spec.safeguards, MONITORED)
    sink = DatabaseSink(sessions, LocalStore(Path("/tmp/grpo-bench-unused")), job_id, f"bench-{index}", spec, monitor)
    names = [f"bench/metric_{m:02d}" for m in range(per_step)]
    sample = SampleRecord(0, 0, "copy 3:", "3", 1.0, {"exact_match": 1.0}, 0.5, 2, False)
    start.wait()
    began = time.perf_counter()
    for step in range(1, steps + 1):
        metrics = {name: step * 0.001 + position for position, name in enumerate(names)}
        sink.on_step(StepReport(step=step, metrics=metrics, samples=[sample] * 4))
    elapsed = time.perf_counter() - began
    engine.dispose()
    return elapsed


def _raw_writer(database_url: str, tenant_id: str, index: int, steps: int, per_step: int, start: Any) -> float:
    """The peer: the same metric rows, one multi-row INSERT and commit per step, nothing else."""
    from app.core.db import make_engine, make_session_factory
    from app.models import JobMetric

    engine = make_engine(database_url)
    job_id = _new_job(make_session_factory(engine), uuid.UUID(tenant_id), index, claim=False)
    start.wait()
    began = time.perf_counter()
    for step in range(1, steps + 1):
        rows = [
            {"job_id": job_id, "step": step, "name": f"bench/metric_{m:02d}", "value": float(m)}
            for m in range(per_step)
        ]
        with engine.begin() as connection:
            connection.execute(insert(JobMetric), rows)
    elapsed = time.perf_counter() - began
    engine.dispose()
    return elapsed


def ingestion(database_url: str, tenant_id: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")  # clean engines and no inherited connections
    results = []
    for repeat in range(args.repeats):
        for name, target, writers in [
            ("sink x1", _sink_writer, 1),
            (f"sink x{args.writers}", _sink_writer, args.writers),
            ("raw INSERT x1 (peer)", _raw_writer, 1),
        ]:
            with context.Manager() as manager:
                start = manager.Barrier(writers + 1)  # every writer imported, connected and holds a job
                with context.Pool(writers) as pool:
                    jobs = [
                        pool.apply_async(
                            target, (database_url, tenant_id, index, args.steps, args.metrics_per_step, start)
                        )
                        for index in range(writers)
                    ]
                    start.wait(timeout=300)
                    began = time.perf_counter()
                    for job in jobs:
                        job.get(timeout=600)
                    wall = time.perf_counter() - began
            rows = writers * args.steps * args.metrics_per_step
            result = {"phase": name, "repeat": repeat, "rows": rows, "seconds": wall, "rows_per_s": rows / wall}
            results.append(result)
            print(
                f"  {name:<22} #{repeat} {rows} rows in {wall:5.2f} s = {result['rows_per_s']:8.0f} rows/s "
                f"({args.steps * writers / wall:6.1f} steps/s)",
                flush=True,
            )
    return results


# --- driver -------------------------------------------------------------------------------------------
def summarise(results: list[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    for phase in dict.fromkeys(r["phase"] for r in results):
        values = [r[key] for r in results if r["phase"] == phase]
        summary[phase] = {"min": min(values), "median": statistics.median(values), "max": max(values)}
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_POSTGRES_URL", DEFAULT_PG),
        help="server to create a scratch database on",
    )
    parser.add_argument("--broker-url", help="Celery broker for submits (default: the embedded SQLite transport)")
    parser.add_argument("--status-rate", type=float, default=200.0)
    parser.add_argument("--submit-rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load phase")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300, help="steps per sink writer")
    parser.add_argument("--metrics-per-step", type=int, default=48, help="a real GRPO step logs about this many")
    parser.add_argument("--writers", type=int, default=4, help="concurrent worker processes for the parallel case")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections of the load generator")
    parser.add_argument("--only", choices=["http", "ingest"], help="run one half")
    parser.add_argument("--json", type=Path, help="also write all results here")
    args = parser.parse_args()

    with ExitStack() as resources:
        database_url = resources.enter_context(scratch_database(args.postgres_url))
        env = {"DATABASE_URL": database_url, **({"CELERY_BROKER_URL": args.broker_url} if args.broker_url else {})}
        data_dir = Path(resources.enter_context(tempfile.TemporaryDirectory(prefix="grpo-bench-")))
        stack = resources.enter_context(running_stack(data_dir, extra_env=env, worker=False))
        key = admin(stack.env, "create-key", "--tenant", "bench")
        admin(stack.env, "set-limits", "--tenant", "bench", "--max-queued", "1000000", "--max-running", "1000")
        print(
            f"API {stack.base_url} on {database_url.rsplit('@', 1)[-1]}, "
            f"broker {args.broker_url or 'embedded SQLite'}; {os.cpu_count()} CPUs; "
            f"load average {os.getloadavg()[0]:.1f} at start"
        )
        http, ingest = [], []
        if args.only != "ingest":
            print("HTTP (open loop; latency from each request's due time):")
            http = asyncio.run(http_phases(stack.base_url, key, args, stack.api.pid))
        if args.only != "http":
            print(f"Ingestion: DatabaseSink.on_step, {args.metrics_per_step} metrics + 4 samples per step:")
            ingest = ingestion(database_url, _tenant_id(database_url), args)
    report = {
        "http_p99_ms": summarise(http, "p99_ms"),
        "http_p50_ms": summarise(http, "p50_ms"),
        "ingest_rows_per_s": summarise(ingest, "rows_per_s"),
    }
    print("Spread over repeats (min / median / max):")
    for table, phases in report.items():
        for phase, spread in phases.items():
            print(f"  {table:<18} {phase:<22} {spread['min']:9.1f} {spread['median']:9.1f} {spread['max']:9.1f}")
    if http:
        status_p99 = report["http_p99_ms"]["status"]["median"]
        peer_p99 = report["http_p99_ms"]["healthz (peer)"]["median"]
        print(f"status p99 / healthz p99 = {status_p99 / peer_p99:.2f} (medians over repeats)")
        print(f"target: status p99 {status_p99:.1f} ms, under 50 at {args.status_rate:.0f}/s?")
    if ingest:
        sink = report["ingest_rows_per_s"]["sink x1"]["median"]
        raw = report["ingest_rows_per_s"]["raw INSERT x1 (peer)"]["median"]
        parallel = report["ingest_rows_per_s"][f"sink x{args.writers}"]["median"]
        print(f"sink / raw INSERT rows/s = {sink / raw:.2f} (medians over repeats)")
        print(f"target: ingestion {sink:.0f} rows/s with one worker, {parallel:.0f} with {args.writers}, >= 5000?")
    if args.json:
        args.json.write_text(json.dumps({"http": http, "ingestion": ingest, "summary": report}, indent=1))
    return 0


def _tenant_id(database_url: str) -> str:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        tenant_id = connection.execute(text("SELECT id FROM tenant WHERE name = 'bench'")).scalar_one()
    engine.dispose()
    return str(tenant_id)


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A uniquely named database on the server, dropped afterwards (so a shared server stays clean)."""
    name = f"grpo_bench_{uuid.uuid4().hex[:12]}"
    admin_engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin_engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
