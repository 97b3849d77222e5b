"""Reward test helpers: validated reward specs, the sandbox settings and process probe, a local HTTP
verifier server."""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from app.schemas.reward import RewardSpec
from workers.rewards.sandbox import SandboxSettings
from workers.rewards.sandbox.pool import CHILD_SCRIPT

SPECS = TypeAdapter(list[RewardSpec])
SETTINGS = SandboxSettings(workers=1)


def specs(*items: dict) -> list:
    return SPECS.validate_python(list(items))


def sandbox_pids(settings: SandboxSettings = SETTINGS) -> list[int]:
    """Live processes running as a sandbox uid (uid_base + launcher pid), started from this checkout's
    sandbox script (other checkouts on the same machine run their own tests at the same time)."""
    found = []
    ours = str(CHILD_SCRIPT).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            if ours not in (entry / "cmdline").read_bytes():
                continue
        except OSError:
            continue
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        if settings.uid_base <= uid < settings.uid_base + 2**22:
            found.append(int(entry.name))
    return found


requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root (namespaces)")


class Verifier(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, dict]] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Verifier

    def log_message(self, *_args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        server = self.server
        with server.lock:
            server.requests.append((self.path, body))
            count = sum(path == self.path for path, _ in server.requests)
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            self.respond(body["items"], count)
        finally:
            with server.lock:
                server.in_flight -= 1

    def respond(self, items: list[dict], count: int) -> None:
        scores = [len(item["completion"]) / 10 for item in items]
        path = self.path
        if path == "/slow":
            time.sleep(1.0)
        elif path == "/paced":
            time.sleep(0.15)
        elif path == "/flaky" and count <= 2:
            return self.send(500, {"detail": "overloaded"})
        elif path == "/busy" and count == 1:
            return self.send(429, {}, {"Retry-After": "0"})
        elif path == "/shape":
            return self.send(200, {"score": scores})
        elif path == "/short":
            return self.send(200, {"scores": scores[:-1]})
        elif path == "/nan":
            return self.send(200, {"scores": ["high"] * len(items)})
        elif path == "/bad":
            return self.send(400, {"detail": "no"})
        elif path == "/mixed":
            return self.send(200, {"scores": [1.0, None, 0.5], "errors": [None, None, "cannot parse"]})
        self.send(200, {"scores": scores})

    def send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for key, value in {
            "content-type": "application/json",
            "content-length": str(len(data)),
            **(headers or {}),
        }.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
