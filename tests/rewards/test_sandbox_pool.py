"""Sandbox pool lifecycle: reuse, replacement, budgets, teardown, fail-closed, and the batch timing."""

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.utils.rewards import SETTINGS, requires_root, sandbox_pids, specs
from workers.rewards import build_reward_fn
from workers.rewards.errors import ProgramError, SandboxUnavailable
from workers.rewards.sandbox import Program, SandboxPool

pytestmark = [requires_root, pytest.mark.usefixtures("no_leaked_sandboxes")]
ROOT = Path(__file__).resolve().parents[2]


def test_program_that_fails_to_load_raises_program_error() -> None:
    with pytest.raises(ProgramError, match="ModuleNotFoundError: No module named 'no_such_module'"):
        SandboxPool(Program("import no_such_module\ndef reward(p, c, r):\n    return 1.0\n"), SETTINGS)


def test_a_failing_isolation_step_is_reported_and_nothing_runs() -> None:
    broken = dataclasses.replace(SETTINGS, nofile=2)  # the worker cannot even duplicate its pipes
    with pytest.raises(SandboxUnavailable, match="privilege drop failed: .*Too many open files"):
        SandboxPool(Program("def reward(p, c, r):\n    return 1.0\n"), broken)


def test_installed_libraries_are_importable() -> None:
    code = "import sympy\ndef reward(p, c, r):\n    return float(sympy.sympify(c))\n"
    with SandboxPool(Program(code), SETTINGS) as pool:
        assert pool.call(["", "2*3+1", {}], 10.0, 10).value == 7.0


def test_workers_are_reused_and_state_persists_within_one_program() -> None:
    code = "calls = []\ndef reward(p, c, r):\n    calls.append(c)\n    return float(len(calls))\n"
    with SandboxPool(Program(code), SETTINGS) as pool:
        values = [pool.call(["", "x", {}], 2.0, 2).value for _ in range(5)]
    assert values == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_a_worker_that_spent_its_lifetime_cpu_is_recycled() -> None:
    busy = "import time\ndef reward(p, c, r):\n    t = time.process_time()\n"
    busy += "    while time.process_time() - t < 0.6:\n        pass\n    return 1.0\n"
    settings = dataclasses.replace(SETTINGS, lifetime_cpu_s=3)
    with SandboxPool(Program(busy), settings) as pool:
        results = [pool.call(["", "", {}], 10.0, 1) for _ in range(4)]
        assert [r.value for r in results] == [1.0] * 4
        assert pool.recycles >= 1 and pool.crashes == 0


def test_step_time_budget_fails_the_rest_of_the_batch() -> None:
    code = "import time\ndef reward(p, c, r):\n    time.sleep(0.3)\n    return 1.0\n"
    spec = specs({"type": "python", "code": code, "batch_timeout_s": 1.0, "max_error_rate": 1.0})
    with build_reward_fn(spec, sandbox=SETTINGS) as reward_fn:
        outcomes = reward_fn.outcomes([""] * 8, ["x"] * 8, [{}] * 8)["python"]
    scored = [o for o in outcomes if o.value == 1.0]
    failed = [o for o in outcomes if o.error]
    assert 1 <= len(scored) <= 4 and len(scored) + len(failed) == 8  # 3 when the machine is idle
    assert all("step time budget of 1 s spent" in o.error for o in failed)


def test_step_cpu_budget_fails_the_rest_of_the_batch() -> None:
    code = "import time\ndef reward(p, c, r):\n    t = time.process_time()\n"
    code += "    while time.process_time() - t < 0.2:\n        pass\n    return 1.0\n"
    spec = specs({"type": "python", "code": code, "batch_cpu_s": 0.5, "max_error_rate": 1.0})
    with build_reward_fn(spec, sandbox=SETTINGS) as reward_fn:
        outcomes = reward_fn.outcomes([""] * 6, ["x"] * 6, [{}] * 6)["python"]
    assert [o.value for o in outcomes[:3]] == [1.0] * 3
    assert all("step CPU budget of 0.5 s spent" in o.error for o in outcomes[3:])


def test_sandboxes_die_with_the_service_process() -> None:
    host = textwrap.dedent(
        """
        from workers.rewards.sandbox import Program, SandboxPool, SandboxSettings
        loop = "def reward(p, c, r):\\n    while True:\\n        pass\\n"
        pool = SandboxPool(Program(loop), SandboxSettings(workers=2))
        print("ready", flush=True)
        pool.call(["", "", {}], 600.0, 600)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", host],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 10
    while len(sandbox_pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sandbox_pids()) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    while sandbox_pids() and time.monotonic() < deadline + 10:
        time.sleep(0.05)
    assert sandbox_pids() == []


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
def test_fails_closed_without_namespace_privileges() -> None:
    script = textwrap.dedent(
        """
        from workers.rewards.errors import SandboxUnavailable
        from workers.rewards.sandbox import Program, SandboxPool, SandboxSettings
        try:
            SandboxPool(Program("def reward(p, c, r):\\n    return 1.0\\n"), SandboxSettings(workers=1))
        except SandboxUnavailable as exc:
            print("UNAVAILABLE", exc)
        else:
            print("RAN UNSANDBOXED")
        """
    )
    out = subprocess.run(
        ["setpriv", "--bounding-set=-all", sys.executable, "-c", script],  # root uid without capabilities
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "UNAVAILABLE sandbox could not start: isolation unavailable" in out.stdout, out.stdout + out.stderr
    assert "Operation not permitted" in out.stdout
    assert SandboxUnavailable.code == "sandbox_unavailable"


def test_batch_of_64_with_a_trivial_python_reward(capsys: pytest.CaptureFixture[str]) -> None:
    """Measures (no timed assert): pool start, first and steady batches of 64, vs. an inline grader."""
    code = "def reward(prompt, completion, row):\n    return float(completion == row['answer'])\n"
    completions = [str(i % 3) for i in range(64)]
    rows = [{"answer": "1"}] * 64
    started = time.perf_counter()
    with build_reward_fn(specs({"type": "python", "code": code}), group_size=8) as reward_fn:
        built = time.perf_counter() - started
        timings = []
        for _ in range(6):
            started = time.perf_counter()
            batch = reward_fn([""] * 64, completions, rows)
            timings.append(time.perf_counter() - started)
        workers = reward_fn.leaves[0].pool.settings.workers  # type: ignore[attr-defined]
    with build_reward_fn(specs({"type": "exact_match"})) as inline_fn:
        started = time.perf_counter()
        inline = inline_fn([""] * 64, completions, rows)
        inline_s = time.perf_counter() - started
    assert batch.total == inline.total == [float(c == "1") for c in completions]
    steady = sorted(timings[1:])[len(timings[1:]) // 2]
    with capsys.disabled():
        print(
            f"\n[sandbox timing, {workers} workers] pool start {built * 1e3:.0f} ms; batch of 64: first "
            f"{timings[0] * 1e3:.1f} ms, steady median {steady * 1e3:.1f} ms "
            f"({steady / 64 * 1e6:.0f} us/completion); "
            f"inline exact_match {inline_s * 1e3:.2f} ms"
        )
