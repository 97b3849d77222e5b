"""Under `./run.sh api` every request gives one JSON access line: the app's, not uvicorn's as well."""

import json
import logging
from collections.abc import Iterator

import pytest

from app.core.logs import configure_logging
from app.core.middleware import logger as access_logger


@pytest.fixture
def json_logs() -> Iterator[None]:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    root.handlers, root.level = before, level
    logging.getLogger("uvicorn.access").disabled = False


@pytest.mark.usefixtures("json_logs")
def test_one_json_access_line_per_request(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", fmt="json")
    # What uvicorn logs for each request (uvicorn/protocols/http/h11_impl.py), then the app's own line.
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/healthz", "1.1", 200)
    access_logger.info("GET /healthz 200", extra={"request_id": "r1"})
    logging.getLogger("uvicorn.error").info("Uvicorn running on http://127.0.0.1:8000")
    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert [r["logger"] for r in records] == ["app.access", "uvicorn.error"]
    assert records[0]["request_id"] == "r1"


@pytest.mark.integration
def test_the_api_process_as_run_sh_starts_it_writes_only_json_lines(tmp_path) -> None:
    import os
    import re
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    root = Path(__file__).resolve().parents[2]
    command = next(line for line in (root / "run.sh").read_text().splitlines() if "-m uvicorn" in line)
    flags = re.findall(r"--log-config \S+", command)
    assert flags == ["--log-config app/core/uvicorn_log.json"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = os.environ | {"GRPO_DATA_DIR": str(tmp_path), "GRPO_SECRET_KEY": "k" * 40, "GRPO_LOG_FORMAT": "json"}
    subprocess.run([sys.executable, "-m", "app.cli", "migrate"], cwd=root, env=env, check=True, capture_output=True)
    args = ["-m", "uvicorn", "app.main:app", "--port", str(port), *flags[0].split()]
    server = subprocess.Popen([sys.executable, *args], cwd=root, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "the API did not start"
                time.sleep(0.2)
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]  # every line is JSON
    assert [r["logger"] for r in records].count("app.access") == 1
    assert not any("/healthz" in r["message"] for r in records if r["logger"] != "app.access")
