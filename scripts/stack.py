"""Start and stop the local service stack (API, a training worker, a service worker, a reward worker and an
inference worker) as child processes.

Used by the README demo and by the integration tests, so both exercise the same processes a user runs.
"""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@dataclass
class Stack:
    base_url: str
    env: dict[str, str]
    api: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes] | None
    log_dir: Path
    reward_worker: subprocess.Popen[bytes] | None = None
    service_worker: subprocess.Popen[bytes] | None = None  # evaluations, merges, preflights
    inference: subprocess.Popen[bytes] | None = None  # the inference worker (docs/inference.md)

    def restart_worker(self) -> None:
        """Start a new worker (after the old one was killed) and wait until it is ready."""
        since = log_size(self.log_dir, "worker.log")
        self.worker = start_worker(self.env, self.log_dir)
        wait_worker_ready(self.worker, self.log_dir, since=since)


def service_env(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "GRPO_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


SERVICE_WORKER_LOG = "service-worker.log"


def start_worker(
    env: dict[str, str], log_dir: Path, queue: str = "grpo", log_name: str = "worker.log"
) -> subprocess.Popen[bytes]:
    """A Celery worker of workers.celery_app: training jobs (`grpo`), or evaluations, merges and preflights
    (`service`, so they never wait behind a training job)."""
    log = (log_dir / log_name).open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "worker",
            "--loglevel",
            "INFO",
            "--pool",
            "prefork",
            "--concurrency",
            "1",
            "--queues",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"{queue}-{os.getpid()}-{time.monotonic_ns()}@%h",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


REWARD_WORKER_LOG = "rewards-worker.log"


def reward_worker_command(concurrency: int = 2, loglevel: str = "INFO") -> list[str]:
    """The reward worker: reward tests and dry runs only, on its own queue, so no training job delays them.
    Threads, not prefork: each check spends its time waiting on sandbox processes."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.reward_app",
        "worker",
        "--loglevel",
        loglevel,
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "--queues",
        "rewards",
        "--without-gossip",
        "--without-mingle",
        "--hostname",
        f"rewards-{os.getpid()}-{time.monotonic_ns()}@%h",
    ]


def start_reward_worker(env: dict[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    log = (log_dir / REWARD_WORKER_LOG).open("ab")
    return subprocess.Popen(
        reward_worker_command(),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_api(env: dict[str, str], log_dir: Path, port: int) -> subprocess.Popen[bytes]:
    log = (log_dir / "api.log").open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_inference(env: dict[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    """One inference worker (`python -m workers.inference`) on the port of env's GRPO_INFERENCE_URL."""
    port = env["GRPO_INFERENCE_URL"].rsplit(":", 1)[1]
    log = (log_dir / "inference.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "workers.inference", "--host", "127.0.0.1", "--port", port],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_inference_ready(env: dict[str, str], process: subprocess.Popen[bytes], timeout_s: float = 90.0) -> None:
    wait_healthy(f"{env['GRPO_INFERENCE_URL']}/healthz", process, "the inference worker", timeout_s)


def admin(env: dict[str, str], *args: str) -> str:
    """Run `grpo-admin ARGS` against the stack's database; its stdout (an API key for create-key)."""
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


def wait_ready(base_url: str, api: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    wait_healthy(f"{base_url}/readyz", api, f"the API at {base_url}", timeout_s)


def wait_healthy(url: str, process: subprocess.Popen[bytes], what: str, timeout_s: float) -> None:
    """Until `url` answers 200; fails at once if `process` exits (see its log under the stack's log dir)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}; see its log")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{what} was not ready within {timeout_s:.0f} s")


def log_size(log_dir: Path, log_name: str) -> int:
    log = log_dir / log_name
    return log.stat().st_size if log.exists() else 0


def wait_worker_ready(
    worker: subprocess.Popen[bytes],
    log_dir: Path,
    timeout_s: float = 90.0,
    log_name: str = "worker.log",
    since: int | None = None,
) -> None:
    """Until the worker logs that it is ready (after byte `since` of its log: where it was when the worker
    started); fails at once if it exits (an import error, a bad broker URL)."""
    log = log_dir / log_name
    start = log_size(log_dir, log_name) if since is None else since
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"the Celery worker exited with code {worker.returncode}:\n{tail}")
        if log.exists() and " ready." in log.read_bytes()[start:].decode(errors="replace"):
            return
        time.sleep(0.3)
    raise TimeoutError(f"the Celery worker was not ready within {timeout_s:.0f} s; see {log}")


def stop(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGTERM the process group (celery's pool children too), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=timeout_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, 9)
        except ProcessLookupError:
            pass
        process.wait(timeout=5)


@contextmanager
def running_stack(
    data_dir: Path,
    *,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
    worker: bool = True,
    inference: bool = True,
) -> Iterator[Stack]:
    """Migrate the database, start API and worker (unless worker=False: jobs then stay queued), a reward
    worker and an inference worker (unless inference=False: the inference routes then answer 503), yield,
    then stop them. Logs go to data_dir/logs."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    env = service_env(data_dir, extra_env)
    if inference and "GRPO_INFERENCE_URL" not in (extra_env or {}):
        env["GRPO_INFERENCE_URL"] = f"http://127.0.0.1:{free_port()}"
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=PROJECT_ROOT, env=env, check=True, capture_output=True
    )
    port = port or free_port()
    worker_log_start = log_size(log_dir, "worker.log")
    worker_process = start_worker(env, log_dir) if worker else None
    rewards_log_start = log_size(log_dir, REWARD_WORKER_LOG)
    rewards = start_reward_worker(env, log_dir)
    service_log_start = log_size(log_dir, SERVICE_WORKER_LOG)
    service = start_worker(env, log_dir, queue="service", log_name=SERVICE_WORKER_LOG) if worker else None
    inference_process = start_inference(env, log_dir) if inference else None
    api = start_api(env, log_dir, port)
    stack = Stack(
        base_url=f"http://127.0.0.1:{port}",
        env=env,
        api=api,
        worker=worker_process,
        log_dir=log_dir,
        reward_worker=rewards,
        service_worker=service,
        inference=inference_process,
    )
    try:
        wait_ready(stack.base_url, api)
        if worker_process is not None:
            wait_worker_ready(worker_process, log_dir, since=worker_log_start)
        wait_worker_ready(rewards, log_dir, log_name=REWARD_WORKER_LOG, since=rewards_log_start)
        if service is not None:
            wait_worker_ready(service, log_dir, log_name=SERVICE_WORKER_LOG, since=service_log_start)
        if inference_process is not None:
            wait_inference_ready(env, inference_process)
        yield stack
    finally:
        if stack.inference is not None:
            stop(stack.inference)
        stop(stack.api)
        if stack.worker is not None:
            stop(stack.worker)
        if stack.reward_worker is not None:
            stop(stack.reward_worker)
        if stack.service_worker is not None:
            stop(stack.service_worker)
