"""run.sh gives the venv's commands without activating the venv (issue 13: `grpo-admin: command not found`),
and the demo's closing note never points at the service it has just stopped."""

import os
import subprocess
from pathlib import Path

from scripts.demo import closing_note

ROOT = Path(__file__).resolve().parents[1]


def run_sh(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """run.sh from another directory, with the project's venv neither activated nor on the PATH."""
    venv_bin = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    base = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PATH": path}
    return subprocess.run(
        [str(ROOT / "run.sh"), *args], cwd="/", env=base | (env or {}), capture_output=True, text=True, timeout=300
    )


def test_run_sh_grpo_is_the_client_cli() -> None:
    done = run_sh("grpo", "--help")
    assert done.returncode == 0, done.stderr
    assert "jobs" in done.stdout


def test_run_sh_admin_creates_a_key_on_a_fresh_data_dir(tmp_path: Path) -> None:
    done = run_sh("admin", "create-key", "--tenant", "t", "--name", "n", env={"GRPO_DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("grpo_")


def test_the_demo_offers_curl_only_while_its_service_is_up() -> None:
    stopped = closing_note("http://127.0.0.1:8000", "grpo_k", "j1", keep_running=False)
    assert "curl" not in stopped and "./run.sh demo --keep" in stopped
    kept = closing_note("http://127.0.0.1:8000", "grpo_k", "j1", keep_running=True)
    assert "curl -H 'Authorization: Bearer grpo_k' 'http://127.0.0.1:8000/v1/jobs/j1/metrics" in kept
