"""User code that tries to escape or harm: each attempt must fail, be recorded as that call's error
(or give the harmless value), and leave both the pool and this process working."""

import os
import socket
import textwrap
import threading
from pathlib import Path

import pytest

from tests.utils.rewards import SETTINGS, requires_root
from workers.rewards.sandbox import CallResult, Program, SandboxPool

pytestmark = [requires_root, pytest.mark.usefixtures("no_leaked_sandboxes")]


def attack(
    body: str, row: dict | None = None, *, timeout_s: float = 2.0, cpu_s: int = 2, memory_mb: int = 256
) -> CallResult:
    """Run `body` for completion 'attack', then check a normal call on the same pool still scores 1.0."""
    code = "def reward(prompt, completion, row):\n    if completion == 'attack':\n"
    code += textwrap.indent(textwrap.dedent(body), " " * 8) + "\n    return 1.0\n"
    with SandboxPool(Program(code, memory_mb=memory_mb), SETTINGS) as pool:
        result = pool.call(["p", "attack", row or {}], timeout_s, cpu_s)
        after = pool.call(["p", "fine", {}], timeout_s, cpu_s)
    assert (after.value, after.error) == (1.0, None), f"pool did not recover: {after}"
    return result


def test_host_files_are_invisible(tmp_path: Path) -> None:
    secret = tmp_path / "service.db"
    secret.write_text("tenant secrets")
    repo_file = Path(__file__).resolve()
    result = attack(
        f"""
        readable = []
        for path in ['/etc/passwd', '/etc/shadow', '/proc/1/environ', '/proc/self/environ', {str(secret)!r},
                     {str(repo_file)!r}, '/root/.bashrc']:
            try:
                open(path).read()
                readable.append(path)
            except OSError:
                pass
        return float(len(readable))
        """
    )
    assert (result.value, result.error) == (0.0, None)
    passwd = attack("return float(len(open('/etc/passwd').read()))")
    assert passwd.value is None and "No such file or directory: '/etc/passwd'" in passwd.error


def test_root_holds_only_the_runtime() -> None:
    result = attack(
        """
        import os
        visible = set(os.listdir('/'))
        if visible & {'etc', 'proc', 'sys', 'home', 'var', 'run', 'mnt', 'opt', 'srv', 'boot'}:
            return 2.0
        if set(os.listdir('/usr')) - {'lib', 'lib64', 'lib32', 'libx32', 'bin', 'sbin', 'share', 'local'}:
            return 4.0  # e.g. /usr/src/app or /usr/local/etc must stay hidden
        return 0.0 if os.getuid() >= 1_000_000_000 and os.getgid() >= 1_000_000_000 else 3.0
        """
    )
    assert (result.value, result.error) == (0.0, None)


def test_service_environment_is_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPO_FAKE_SECRET", "hunter2-secret")
    result = attack(
        """
        import os
        leaked = 'GRPO_FAKE_SECRET' in os.environ or any('hunter2' in v for v in os.environ.values())
        return 1.0 if leaked else float(len(os.environ))
        """
    )
    assert result.error is None and result.value == 3.0  # only OMP/OPENBLAS/MKL_NUM_THREADS=1


def test_no_network_even_to_a_local_listener() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(3.0)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    result = attack(
        """
        import socket
        s = socket.create_connection(('127.0.0.1', row['port']), timeout=1)
        s.sendall(b'stolen')
        return 1.0
        """,
        {"port": port},
    )
    thread.join()
    server.close()
    assert result.value is None and "Network is unreachable" in result.error
    assert accepted == []


def test_infinite_loop_is_killed_at_the_wall_time_limit() -> None:
    result = attack("while True: pass", timeout_s=1.0, cpu_s=30)
    assert result.value is None and result.error == "timed out after 1 s"


def test_cpu_time_limit_kills_a_busy_loop_before_the_wall_limit() -> None:
    result = attack("while True: pass", timeout_s=20.0, cpu_s=1)
    assert result.value is None and "CPU time limit exceeded" in result.error


def test_allocating_10_gb_fails_with_memory_error() -> None:
    result = attack("x = bytearray(10 * 1024**3)\nreturn 1.0")
    assert result.value is None and result.error.startswith("MemoryError")
    creeping = attack("chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))")
    assert creeping.value is None and creeping.error.startswith("MemoryError")


def test_fork_bomb_and_threads_are_refused() -> None:
    result = attack("import os\nwhile True:\n    os.fork()")
    assert result.value is None and "BlockingIOError" in result.error
    threads = attack("import threading\nthreading.Thread(target=print).start()\nreturn 1.0")
    assert threads.value is None and "can't start new thread" in threads.error
    shell = attack("import subprocess\nsubprocess.run(['/bin/sh', '-c', 'true'])\nreturn 1.0")
    assert shell.value is None and "BlockingIOError" in shell.error


def test_os_exit_is_a_recorded_error() -> None:
    result = attack("import os\nos._exit(0)")
    assert result.value is None and "sandbox process exited (exit code 0)" in result.error


def test_non_numeric_and_non_finite_returns_are_errors() -> None:
    assert "reward returned str" in attack("return 'x' * 10**7").error
    assert "expected a finite number" in attack("return float('nan')").error
    assert "expected a finite number" in attack("return float('inf')").error
    assert "reward returned list" in attack("return [1.0]").error


def test_writes_land_only_in_the_private_tmp(tmp_path: Path) -> None:
    host_file = tmp_path / "escaped.txt"
    result = attack(
        f"""
        written = []
        for path in ['/escaped.txt', '/sandbox/escaped.txt', '/usr/escaped.txt', '/dev/escaped.txt',
                     {str(host_file)!r}, '/tmp/inside.txt']:
            try:
                with open(path, 'w') as f:
                    f.write('x')
                written.append(path)
            except OSError:
                pass
        return 1.0 if written == ['/tmp/inside.txt'] else -float(len(written))
        """
    )
    assert (result.value, result.error) == (1.0, None)
    assert not host_file.exists()
    big = attack("open('/tmp/big', 'wb').write(b'x' * 50 * 1024 * 1024)\nreturn 1.0")
    assert big.value is None and ("File too large" in big.error or "No space left" in big.error)


def test_huge_output_is_capped() -> None:
    printed = attack("for _ in range(200):\n    print('x' * 10**6)\nreturn 2.0", timeout_s=10.0, cpu_s=10)
    assert (printed.value, printed.error) == (2.0, None)
    message = attack("raise ValueError('y' * 10**7)")
    assert message.error.startswith("ValueError: yyy") and len(message.error) <= SETTINGS.max_error_chars


def test_cannot_signal_this_process() -> None:
    result = attack("import os, signal\nos.kill(row['pid'], signal.SIGKILL)\nreturn 1.0", {"pid": os.getpid()})
    assert result.value is None and "ProcessLookupError" in result.error
    init = attack("import os, signal\nos.kill(1, signal.SIGKILL)\nreturn 1.0")
    assert init.value is None and "PermissionError" in init.error


def test_namespace_and_kernel_attack_surface_calls_are_filtered() -> None:
    """An unprivileged user namespace would give the program capabilities over new kernel objects;
    seccomp refuses it (and io_uring, bpf, ptrace, mount ...) with EPERM."""
    result = attack(
        """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        refused = []
        for name, call in [('unshare', lambda: libc.unshare(0x10000000)),
                           ('io_uring_setup', lambda: libc.syscall(425, 1, None)),
                           ('bpf', lambda: libc.syscall(321, 0, None, 0)),
                           ('ptrace', lambda: libc.syscall(101, 16, 1, 0, 0)),
                           ('mount', lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))]:
            if call() == -1 and ctypes.get_errno() == 1:
                refused.append(name)
        return float(len(refused))
        """
    )
    assert (result.value, result.error) == (5.0, None)
