"""run.sh gives the venv's commands without activating the venv (issue 13: `grpo-admin: command not found`),
and the demo's closing note never points at the service it has just stopped."""

import os
import subprocess
from pathlib import Path

import pytest

from scripts.demo import closing_note

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("command", "expected"), [("admin", "create-key"), ("grpo", "jobs")])
def test_run_sh_runs_the_venvs_commands_without_an_activated_venv(command: str, expected: str) -> None:
    venv_bin = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PATH": path}
    done = subprocess.run(
        [str(ROOT / "run.sh"), command, "--help"], cwd="/", env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout


def test_the_demo_offers_curl_only_while_its_service_is_up() -> None:
    stopped = closing_note("http://127.0.0.1:8000", "grpo_k", "j1", keep_running=False)
    assert "curl" not in stopped and "./run.sh demo --keep" in stopped
    kept = closing_note("http://127.0.0.1:8000", "grpo_k", "j1", keep_running=True)
    assert "curl -H 'Authorization: Bearer grpo_k' 'http://127.0.0.1:8000/v1/jobs/j1/metrics" in kept
