"""Host side of the sandbox: start isolated child processes, talk to them, kill and replace them.

A `SandboxPool` runs ONE program (a user's reward code or a built-in grader) in `settings.workers`
reusable worker processes. A pool is never shared between programs: state a program leaves behind in its
interpreter (monkey-patched builtins, cached data) would otherwise reach the next program's inputs.
See workers/rewards/README.md for what the isolation does and does not protect.
"""

import json
import logging
import math
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from workers.rewards.errors import ProgramError, SandboxUnavailable

logger = logging.getLogger(__name__)

CHILD_SCRIPT = Path(__file__).with_name("_child.py")
KILL_GRACE_S = 2.0  # orderly teardown (close pipes) before SIGKILL of the launcher
_SIGNAL_HINTS = {
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGKILL: "killed",
    signal.SIGSEGV: "crashed (segmentation fault)",
    signal.SIGABRT: "aborted",
}


SYSTEM_RO_PATHS = (
    "/usr/lib",
    "/usr/lib64",
    "/usr/lib32",
    "/usr/libx32",
    "/usr/bin",
    "/usr/sbin",
    "/usr/share",
    "/lib",
    "/lib64",
    "/lib32",
    "/libx32",
    "/bin",
    "/sbin",
)


def default_ro_paths() -> tuple[str, ...]:
    """Host paths the sandbox sees read-only: system libraries and binaries, and the directories of
    the Python installation (stdlib and LIBDIR, e.g. /usr/local/lib or ~/.pyenv/versions/X/lib).

    Not /usr as a whole: images often keep the application in /usr/src/app or config in /usr/local/etc.
    /lib, /bin... are symlinks into /usr on merged-/usr systems; the child recreates symlinks as such.
    """
    python = [sysconfig.get_path("stdlib"), sysconfig.get_config_var("LIBDIR") or ""]
    return outermost(list(SYSTEM_RO_PATHS) + [p for p in python if p])


def outermost(paths: list[str]) -> tuple[str, ...]:
    """Drop paths inside another listed path (binding both would mount the parent over the child)."""
    kept: list[str] = []
    for path in sorted(dict.fromkeys(paths), key=len):
        if not any(path == k or _under(path, k) for k in kept):
            kept.append(path)
    return tuple(kept)


def site_packages_paths() -> tuple[str, ...]:
    """The running interpreter's site-packages, so sandboxed code can import installed libraries."""
    found = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    return tuple(sorted(p for p in found if os.path.isdir(p)))


def _under(path: str, parent: str) -> bool:
    return os.path.abspath(path).startswith(parent.rstrip("/") + "/")


@dataclass(frozen=True)
class SandboxSettings:
    """Service-level sandbox knobs (per reward limits live in the reward spec)."""

    workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))  # processes per pool
    startup_timeout_s: float = 30.0  # launch + isolation + program load (math_verify imports sympy: ~1 s)
    tmp_size_mb: int = 16  # the writable /tmp tmpfs; it counts against host RAM, not RLIMIT_AS
    tmp_inodes: int = 4096  # files + directories in that /tmp (each costs kernel memory the size misses)
    max_output_chars: int = 65536  # stdout/stderr the program may print per call; the rest is dropped
    max_error_chars: int = 1000  # error messages are cut to this
    max_reply_bytes: int = 65536  # a longer reply frame is a protocol violation: the worker is killed
    lifetime_cpu_s: int = 3600  # CPU seconds one worker process may use before it is replaced
    nofile: int = 64  # RLIMIT_NOFILE
    uid_base: int = 1_000_000_000  # each worker runs as uid_base + launcher pid (unique while alive)
    ro_paths: tuple[str, ...] = field(default_factory=default_ro_paths)
    site_packages: bool = True  # expose this interpreter's site-packages read-only (code only, no data)
    python: str = sys.executable


@dataclass(frozen=True)
class Program:
    """What a pool runs: source defining `reward(prompt, completion, row)`, and a CONFIG dict for it."""

    code: str
    config: dict = field(default_factory=dict)
    memory_mb: int = 512
    builtin: bool = False  # ours, not the user's: failing to load is the server's fault (SandboxUnavailable)


@dataclass
class CallResult:
    value: float | None = None  # None with error None: "not applicable"
    error: str | None = None
    cpu_s: float = 0.0
    latency_s: float = 0.0
    retire: bool = False  # the worker could not clear its scratch /tmp: replace it before the next call


class _Broken(Exception):
    """The worker process is unusable (died, timed out, spoke garbage) and must be replaced."""


class SandboxWorker:
    """One isolated process running one program. Not thread-safe: the pool hands it to one thread."""

    def __init__(self, program: Program, settings: SandboxSettings) -> None:
        self.settings = settings
        ro_paths = list(settings.ro_paths)
        sys_path = list(site_packages_paths()) if settings.site_packages else []
        config = {
            "parent_pid": os.getpid(),
            "uid_base": settings.uid_base,
            "ro_paths": list(outermost(ro_paths + sys_path)),
            "tmp_size_mb": settings.tmp_size_mb,
            "tmp_inodes": settings.tmp_inodes,
            "fsize_mb": settings.tmp_size_mb,
            "memory_mb": program.memory_mb,
            "nofile": settings.nofile,
            "lifetime_cpu_s": settings.lifetime_cpu_s,
            "max_output_chars": settings.max_output_chars,
            "max_error_chars": settings.max_error_chars,
        }
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [settings.python, "-I", "-S", "-B", str(CHILD_SCRIPT), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},
            cwd="/",
            close_fds=True,
            start_new_session=True,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in, self._out = self._proc.stdin.fileno(), self._proc.stdout.fileno()
        os.set_blocking(self._in, False)
        deadline = time.monotonic() + settings.startup_timeout_s
        try:
            hello = self._receive(deadline)
            if "fatal" in hello:
                raise SandboxUnavailable(f"sandbox could not start: {hello['fatal']}")
            if not hello.get("seccomp"):
                logger.warning("sandbox runs without its seccomp filter on this architecture")
            self._send({"code": program.code, "config": program.config, "sys_path": sys_path}, deadline)
            ready = self._receive(deadline)
            if "error" in ready and program.builtin:  # e.g. math_verify missing from the runtime
                logger.error("built-in sandbox program failed to load: %s", ready["error"])
                raise SandboxUnavailable(f"a built-in grader cannot load in the sandbox: {ready['error']}")
            if "error" in ready:
                raise ProgramError(f"reward program failed to load: {ready['error']}")
        except _Broken as exc:
            self.kill()
            raise SandboxUnavailable(f"sandbox could not start: {exc}") from None
        except BaseException:
            self.kill()
            raise

    # -- calls --------------------------------------------------------------------------------------
    def call(self, args: list, timeout_s: float, cpu_s: int) -> CallResult:
        """Run reward(*args). Raises _Broken when the process must be replaced (the result is then
        recorded by the pool as an error for this call)."""
        started = time.monotonic()
        deadline = started + timeout_s
        self._send({"call": args, "cpu_s": cpu_s}, deadline)
        reply = self._receive(deadline, timeout_s=timeout_s)
        latency = time.monotonic() - started
        if reply.get("recycle"):
            raise _Recycle
        cpu = float(reply.get("cpu", 0.0))
        retire = bool(reply.get("retire"))
        if "error" in reply:
            return CallResult(error=str(reply["error"]), cpu_s=cpu, latency_s=latency, retire=retire)
        value = reply.get("value")
        if value is not None and (not isinstance(value, int | float) or not math.isfinite(value)):
            raise _Broken(f"malformed reply {str(reply)[:200]!r}")
        value = None if value is None else float(value)
        return CallResult(value=value, cpu_s=cpu, latency_s=latency, retire=retire)

    def kill(self) -> None:
        """Stop the worker and everything it started; returns once they are gone.

        Closing our pipe ends makes the launcher SIGKILL the namespace's init; the kernel kills the
        rest of the namespace and the init's exit waits for them, so the launcher exits last. If that
        takes too long, SIGKILL the launcher: PR_SET_PDEATHSIG then kills the init just the same.
        """
        for stream in (self._proc.stdin, self._proc.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass
        try:
            self._proc.wait(timeout=KILL_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            self._proc.kill()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL of our own child
            logger.error("sandbox launcher %d did not exit after SIGKILL", self._proc.pid)

    # -- framing ------------------------------------------------------------------------------------
    def _send(self, obj: dict, deadline: float) -> None:
        data = json.dumps(obj, default=str).encode()
        data = struct.pack(">I", len(data)) + data
        view = memoryview(data)
        while view:
            if not _wait(self._in, select.POLLOUT, deadline):
                raise _Broken("timed out sending the request")
            try:
                view = view[os.write(self._in, view) :]
            except (BrokenPipeError, OSError) as exc:
                raise _Broken(self._death_reason(f"pipe closed ({exc.strerror})")) from None

    def _receive(self, deadline: float, timeout_s: float | None = None) -> dict:
        header = self._read(4, deadline, timeout_s)
        (size,) = struct.unpack(">I", header)
        if size > self.settings.max_reply_bytes:
            raise _Broken(f"reply of {size} bytes exceeds the {self.settings.max_reply_bytes}-byte cap")
        try:
            reply = json.loads(self._read(size, deadline, timeout_s))
        except ValueError:
            raise _Broken("reply is not valid JSON") from None
        if not isinstance(reply, dict):
            raise _Broken("reply is not a JSON object")
        return reply

    def _read(self, n: int, deadline: float, timeout_s: float | None) -> bytes:
        chunks: list[bytes] = []
        while n:
            if not _wait(self._out, select.POLLIN, deadline):
                raise _Broken(f"timed out after {timeout_s:g} s" if timeout_s else "timed out")
            chunk = os.read(self._out, n)
            if not chunk:
                raise _Broken(self._death_reason("the sandbox process exited"))
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _death_reason(self, what: str) -> str:
        try:
            code = self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return what
        if code < 0:
            return f"{what}: launcher killed by signal {-code}"
        if code > 128 and code - 128 in _SIGNAL_HINTS.keys():
            return f"{what}: {_SIGNAL_HINTS[signal.Signals(code - 128)]}"
        if code > 128:
            return f"{what}: signal {code - 128}"
        return f"{what} (exit code {code})"


def _wait(fd: int, event: int, deadline: float) -> bool:
    """poll() rather than select(): select fails on descriptors above 1023, which a busy worker has."""
    poller = select.poll()
    poller.register(fd, event)
    remaining = deadline - time.monotonic()
    return remaining > 0 and bool(poller.poll(remaining * 1000))


class _Recycle(_Broken):
    """The worker spent its lifetime CPU budget before running the call; retry on a fresh one."""


class SandboxPool:
    """Workers running one program. `call` is thread-safe and blocks until a worker is free; a worker
    that timed out, crashed or broke the protocol is killed and replaced on its next use."""

    def __init__(self, program: Program, settings: SandboxSettings | None = None, warm: bool = True) -> None:
        self.program = program
        self.settings = settings or SandboxSettings()
        self._idle: queue.SimpleQueue[SandboxWorker | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self.crashes = 0  # workers replaced after a timeout, crash or protocol violation
        self.recycles = 0  # workers replaced because their lifetime CPU budget was spent
        workers: list[SandboxWorker | None] = [None] * self.settings.workers
        if warm:
            workers[0] = SandboxWorker(program, self.settings)  # fail fast, and once, on a bad program
            rest = [threading.Thread(target=self._warm_one, args=(workers, i)) for i in range(1, len(workers))]
            for thread in rest:
                thread.start()
            for thread in rest:
                thread.join()
        for worker in workers:
            self._idle.put(worker)

    def _warm_one(self, workers: list[SandboxWorker | None], index: int) -> None:
        try:
            workers[index] = SandboxWorker(self.program, self.settings)
        except Exception:  # noqa: BLE001 - left None: it is started on first use, and errors then
            logger.exception("could not pre-start sandbox worker %d", index)

    def call(self, args: list, timeout_s: float, cpu_s: int) -> CallResult:
        worker = self._idle.get()
        started = time.monotonic()
        try:
            for _ in range(2):  # the second round only after a _Recycle
                if self._closed:
                    return CallResult(error="sandbox pool is closed")
                if worker is None:
                    worker = SandboxWorker(self.program, self.settings)
                try:
                    result = worker.call(args, timeout_s, cpu_s)
                    if result.retire:
                        worker.kill()
                        worker = None
                        self.recycles += 1
                    return result
                except _Recycle:
                    worker.kill()
                    worker = None
                    self.recycles += 1
                except _Broken as exc:
                    worker.kill()
                    worker = None
                    self.crashes += 1
                    return CallResult(error=str(exc), latency_s=time.monotonic() - started)
            return CallResult(error="sandbox worker recycled twice")
        except (SandboxUnavailable, ProgramError) as exc:
            return CallResult(error=str(exc))
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        """Kill every worker (waiting for calls in flight). Later calls get a 'closed' error."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for _ in range(self.settings.workers):
            worker = self._idle.get()
            if worker is not None:
                worker.kill()
        for _ in range(self.settings.workers):
            self._idle.put(None)

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
