"""The sandbox works wherever the project, its venv and Python live (issue 13): under /tmp, under a
path with spaces. Its own root and scratch /tmp are tmpfs mounts that used to hide such paths."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.rewards.conftest import SETTINGS, requires_root
from workers.rewards.errors import SandboxUnavailable
from workers.rewards.sandbox import Program, SandboxPool, pool

pytestmark = requires_root
ROOT = Path(__file__).resolve().parents[2]
USES_HELPER = "import helper_mod\ndef reward(p, c, r):\n    return helper_mod.VALUE\n"


def _library_under(tmp_path: Path) -> Path:
    library = tmp_path / "a dir with spaces" / "site-packages"
    library.mkdir(parents=True)
    (library / "helper_mod.py").write_text("VALUE = 0.25\n")
    return library


def test_installed_code_under_tmp_and_a_path_with_spaces_is_visible(tmp_path, monkeypatch) -> None:
    assert str(tmp_path).startswith("/tmp/")  # the case that broke: the sandbox's tmpfs root is at /tmp
    library = _library_under(tmp_path)
    installed = pool.site_packages_paths()
    monkeypatch.setattr(pool, "site_packages_paths", lambda: (*installed, str(library)))
    with SandboxPool(Program(USES_HELPER), SETTINGS) as sandbox:
        results = [sandbox.call(["", "", {}], 10.0, 10) for _ in range(2)]
        assert sandbox.recycles == 0  # the scratch cleanup leaves the read-only mounts under /tmp alone
    assert [(r.error, r.value) for r in results] == [(None, 0.25)] * 2


def test_a_venv_under_tmp_with_spaces_runs_python_rewards(tmp_path) -> None:
    """A real venv (its interpreter, its site-packages) under /tmp/... with a space in the path."""
    venv = tmp_path / "my venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "helper_mod.py").write_text("VALUE = 0.5\n")
    script = textwrap.dedent(
        f"""
        from workers.rewards.sandbox import Program, SandboxPool, SandboxSettings
        with SandboxPool(Program({USES_HELPER!r}), SandboxSettings(workers=1)) as sandbox:
            result = sandbox.call(["", "", {{}}], 10.0, 10)
        print(result.value, result.error)
        """
    )
    # The project's own dependencies come from PYTHONPATH; what the sandbox must see is the venv's.
    deps = [p for p in sys.path if p.endswith("site-packages")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *deps])}
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[:2] == ["0.5", "None"], out.stdout


def test_a_builtin_grader_that_cannot_load_is_sandbox_unavailable() -> None:
    broken = Program("import math_verify_missing_here\ndef reward(p, c, r):\n    return 1.0\n", builtin=True)
    with pytest.raises(SandboxUnavailable, match="built-in grader cannot load"):
        SandboxPool(broken, SETTINGS)


SPAM = """
import os
def reward(p, c, r):
    made = 0
    try:
        for i in range(100_000):
            open(f"/tmp/f{i}", "w").close()
            made += 1
    except OSError:
        pass
    return float(made)
"""

# Counts only what a previous call would have left: /tmp also holds the mount points of read-only paths
# that live under /tmp (a project or venv cloned there), which are not the program's.
LEFT_OVER = """
import os
def reward(p, c, r):
    seen = len({"a", "link"} & set(os.listdir("/tmp")))
    os.makedirs("/tmp/a/b/c", exist_ok=True)
    open("/tmp/a/b/c/file", "w").write("x" * 1000)
    os.symlink("/tmp/a", "/tmp/link")
    return float(seen)
"""


def test_scratch_tmp_has_an_inode_limit_and_is_emptied_between_calls() -> None:
    with SandboxPool(Program(SPAM), SETTINGS) as sandbox:
        made = [sandbox.call(["", "", {}], 30.0, 30).value for _ in range(2)]
        assert sandbox.recycles == 0  # emptied in place, not by replacing the process
    assert made[0] == made[1] and made[0] < SETTINGS.tmp_inodes  # 100k files fail; nothing piles up


def test_files_do_not_persist_across_calls() -> None:
    with SandboxPool(Program(LEFT_OVER), SETTINGS) as sandbox:
        seen = [sandbox.call(["", "", {}], 10.0, 10).value for _ in range(3)]
    assert seen == [0.0, 0.0, 0.0]


def test_a_scratch_dir_the_program_locks_gets_a_fresh_process() -> None:
    locked = "import os\ndef reward(p, c, r):\n    seen = int('d' in os.listdir('/tmp'))\n"
    locked += "    os.makedirs('/tmp/d/e', exist_ok=True)\n    os.chmod('/tmp/d', 0)\n    return float(seen)\n"
    with SandboxPool(Program(locked), SETTINGS) as sandbox:
        seen = [sandbox.call(["", "", {}], 10.0, 10).value for _ in range(2)]
        assert sandbox.recycles == 2 and sandbox.crashes == 0  # each call left a locked dir
    assert seen == [0.0, 0.0]
