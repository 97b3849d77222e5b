"""The sandboxed side of a reward program: isolation setup, then a request loop.

Run as a script by `pool.py`: ``python -I -S -B _child.py CONFIG_JSON`` with an empty environment,
so this file imports the standard library only (the project directory is never on sys.path).

Three processes per sandbox worker, because a PID namespace only applies to the children of the
process that creates it, and because the init of a PID namespace ignores signals it has no handler
for (so RLIMIT_CPU's SIGXCPU/SIGKILL would not stop it):

  launcher (host PID namespace, root)  unshare(mount, net, pid, ipc, uts); fork; wait; exit with the
                                       child's status. When the pool's end of the request pipe closes
                                       (the pool stops the worker, or the service dies) it SIGKILLs
                                       the init; if it is killed itself, PR_SET_PDEATHSIG does.
  init     (PID 1 in the namespace)    builds the new root filesystem, pivot_root's into it, forks the
                                       worker and reaps it. When it dies the kernel kills every
                                       process in the namespace.
  worker   (PID 2, unprivileged uid)   drops to a uid of its own, sets rlimits and a seccomp filter,
                                       runs the user program and answers requests on the inherited
                                       stdin/stdout pipes.

Frames on the pipes: 4-byte big-endian length, then UTF-8 JSON.
"""

import ctypes
import json
import math
import os
import platform
import resource
import select
import signal
import struct
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves our own directory out
import _seccomp  # noqa: E402 - after the path fix; stdlib only, like this file

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
KEYCTL_JOIN_SESSION_KEYRING = 1
SYSCALLS = {"x86_64": {"pivot_root": 155, "keyctl": 250}, "aarch64": {"pivot_root": 41, "keyctl": 219}}

NEW_ROOT = "/tmp"  # any existing directory: a fresh tmpfs is mounted over it, in our mount namespace only
WORKDIR = "/sandbox"  # the program's working directory: empty and read-only
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Bound before any user code runs: a program may replace os.unlink & co. in its own interpreter, and
# the scratch cleanup between calls must not be fooled by that.
_fwalk, _unlink, _rmdir, _stat = os.fwalk, os.unlink, os.rmdir, os.stat

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _enc(path):
    return None if path is None else os.fsencode(path)


def mount(src, target, fstype, flags, data=None):
    _check(libc.mount(_enc(src), _enc(target), _enc(fstype), flags, _enc(data)), f"mount {target}")


def prctl(option, arg):
    _check(libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


def syscall_number(name):
    table = SYSCALLS.get(platform.machine())
    if table is None:
        raise OSError(0, f"unsupported architecture {platform.machine()!r}")
    return table[name]


# --- framing -------------------------------------------------------------------------------------
def send(fd, obj):
    data = json.dumps(obj, allow_nan=False).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


def _read_exact(fd, n):
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(fd):
    (size,) = struct.unpack(">I", _read_exact(fd, 4))
    return json.loads(_read_exact(fd, size))


def fatal(stage, exc, fd=1):
    try:
        send(fd, {"fatal": f"{stage}: {exc}", "stage": stage})
    finally:
        os._exit(70)


# --- 1) launcher ---------------------------------------------------------------------------------
def launcher(cfg):
    try:
        if os.getppid() != cfg["parent_pid"]:
            os._exit(1)
        flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
        _check(libc.unshare(flags), "unshare(mount|net|pid|ipc|uts)")
    except Exception as exc:  # noqa: BLE001 - any failure here means "no isolation": fail closed
        fatal("isolation unavailable", exc)
    uid = cfg["uid_base"] + os.getpid()  # unique among live sandboxes: RLIMIT_NPROC counts per uid
    # A copy of the request pipe's read end: it reports POLLHUP once the pool's write end is closed,
    # i.e. when the pool kills this worker or the whole service dies. (PR_SET_PDEATHSIG would fire
    # when the *thread* that started us exits, and pools start workers from short-lived threads.)
    watch = os.dup(0)
    pid = os.fork()
    if pid == 0:
        os.close(watch)
        init(cfg, uid)
    _to_devnull(0, 1)  # only the worker may hold the reply pipe, so its death is an EOF for the pool
    child = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(watch, 0)  # no events asked: only POLLHUP/POLLERR are reported
    poller.register(child, select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            if fd == child:
                _, status = os.waitpid(pid, 0)
                os._exit(_exit_code(status))
            os.kill(pid, signal.SIGKILL)  # the init; the kernel then kills the whole namespace
            os.waitpid(pid, 0)
            os._exit(1)


def _to_devnull(*fds):
    null = os.open("/dev/null", os.O_RDWR)
    for fd in fds:
        os.dup2(null, fd)
    os.close(null)


def _exit_code(status):
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


# --- 2) init: new root filesystem ----------------------------------------------------------------
def init(cfg, uid):
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        build_root(cfg)
        libc.sethostname(b"sandbox", 7)
    except Exception as exc:  # noqa: BLE001
        fatal("filesystem isolation failed", exc)
    pid = os.fork()
    if pid == 0:
        worker(cfg, uid)
    _to_devnull(0, 1, 2)
    while True:  # PID 1 reaps every orphan; it exits, taking the namespace down, when the worker does
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(1)
        if reaped == pid:
            os._exit(_exit_code(status))


def _mkdirs(path):
    os.makedirs(path, mode=0o755, exist_ok=True)


def resolve_sources(paths):
    """Pin every read-only host path before anything is mounted: (src, symlink target or None, fd).

    The new root and the scratch /tmp are tmpfs mounts over existing directories, so they hide
    whatever lives below them (a project, venv or Python installation under /tmp). An O_PATH
    descriptor keeps reaching the original directory, and /proc/self/fd/N names it for the bind.
    """
    sources = []
    for src in paths:
        if not os.path.lexists(src):
            continue
        if os.path.islink(src):
            sources.append((src, os.readlink(src), None))
        else:
            sources.append((src, None, os.open(src, os.O_PATH | os.O_CLOEXEC)))
    return sources


def _bind_readonly(src, link, fd, root):
    """Make host path `src` visible at the same path inside `root`, read-only, no suid, no devices."""
    target = root + src
    if link is not None:
        _mkdirs(os.path.dirname(target))
        if not os.path.lexists(target):
            os.symlink(link, target)
        return
    if os.path.isdir(f"/proc/self/fd/{fd}"):
        _mkdirs(target)
    else:
        _mkdirs(os.path.dirname(target))
        open(target, "a").close()
    mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
    # A bind mount ignores MS_RDONLY on creation; the flags only take effect on a remount.
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def build_root(cfg):
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount propagates back to the host
    sources = resolve_sources(cfg["ro_paths"])
    root = NEW_ROOT
    mount("sandbox-root", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    # The scratch /tmp first, so read-only paths under /tmp are mounted on top of it, not hidden by it.
    # nr_inodes bounds the files a program can pile up (each costs kernel memory the size cap misses).
    _mkdirs(root + "/tmp")
    mount(
        "sandbox-tmp",
        root + "/tmp",
        "tmpfs",
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        f"size={cfg['tmp_size_mb']}m,nr_inodes={cfg['tmp_inodes']},mode=1777",
    )
    for src, link, fd in sources:
        _bind_readonly(src, link, fd, root)
        if fd is not None:
            os.close(fd)
    _mkdirs(root + "/dev")
    for dev in ("null", "zero", "random", "urandom"):
        open(f"{root}/dev/{dev}", "a").close()
        mount(f"/dev/{dev}", f"{root}/dev/{dev}", None, MS_BIND)
    _mkdirs(root + WORKDIR)
    _mkdirs(root + "/.old")
    _check(libc.syscall(syscall_number("pivot_root"), _enc(root), _enc(root + "/.old")), "pivot_root")
    os.chdir("/")
    _check(libc.umount2(b"/.old", MNT_DETACH), "umount old root")  # the host tree is now unreachable
    os.rmdir("/.old")
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    missing = [src for src, _, _ in sources if not os.path.lexists(src)]
    if missing:  # the runtime (stdlib, site-packages) must be there, or imports fail as the user's fault
        raise OSError(0, f"the sandbox cannot see its runtime: {', '.join(missing)} missing inside")


# --- 3) worker: drop privileges, limits, serve -----------------------------------------------------
def worker(cfg, uid):
    proto_out = 1
    try:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # a non-root uid has no capabilities left, in any namespace
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the uid change cleared it
        # Leave the service's session keyring: "possession" would grant access despite the uid.
        libc.syscall(syscall_number("keyctl"), KEYCTL_JOIN_SESSION_KEYRING, None)
        mib = 1024 * 1024
        limits = {
            resource.RLIMIT_AS: cfg["memory_mb"] * mib,
            resource.RLIMIT_NPROC: 1,  # this process only: no fork, no threads
            resource.RLIMIT_FSIZE: cfg["fsize_mb"] * mib,
            resource.RLIMIT_NOFILE: cfg["nofile"],
            resource.RLIMIT_CORE: 0,
            resource.RLIMIT_MEMLOCK: 0,
            resource.RLIMIT_MSGQUEUE: 0,
            resource.RLIMIT_CPU: cfg["lifetime_cpu_s"],
        }
        for which, value in limits.items():
            resource.setrlimit(which, (value, value))
        os.chdir(WORKDIR)
        os.environ.clear()
        os.environ.update(THREAD_ENV)
        proto_in, proto_out = os.dup(0), os.dup(1)
        _to_devnull(0, 1, 2)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails with EFBIG instead
        filtered = _seccomp.install(libc)  # last: the setup above uses calls it denies
    except Exception as exc:  # noqa: BLE001
        fatal("privilege drop failed", exc, proto_out)
    serve(cfg, proto_in, proto_out, filtered)


class CappedWriter:
    """Stands in for sys.stdout/sys.stderr: keeps the first `cap` characters, drops the rest."""

    def __init__(self, cap):
        self.cap, self.size, self.parts = cap, 0, []

    def write(self, text):
        text = str(text)
        room = self.cap - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


def describe(exc, limit):
    """'ZeroDivisionError: division by zero (line 3)', cut to `limit` characters."""
    line = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == "<reward>":
            line = f" (line {frame.lineno})"
            break
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001 - a hostile __str__ must not take the worker down
        text = type(exc).__name__
    return (text[: limit - len(line)] + line)[:limit]


def load_program(msg, limit):
    sys.path[:0] = msg.get("sys_path", [])
    namespace = {"__name__": "__reward__", "CONFIG": msg.get("config", {})}
    try:
        exec(compile(msg["code"], "<reward>", "exec"), namespace)  # noqa: S102 - this is the sandbox
        fn = namespace.get(msg.get("entry", "reward"))
        if not callable(fn):
            return None, "the program defines no callable 'reward'"
        return fn, None
    except BaseException as exc:  # noqa: BLE001 - includes SystemExit from the program
        return None, describe(exc, limit)


def as_score(value):
    """The return value as a float or None (not applicable); raises TypeError/ValueError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        score = float(value)
        if not math.isfinite(score):
            raise ValueError(f"reward returned {score}, expected a finite number")
        return score
    raise TypeError(f"reward returned {type(value).__name__}, expected a float, int or None")


def clear_scratch(uid, top="/tmp"):
    """Delete what the program left in the scratch /tmp, so no call sees (or piles onto) an earlier
    call's files. Only entries owned by this uid: the mount points of read-only paths under /tmp
    belong to root and are never entered. Returns False when anything could not be removed."""
    clean, dirs = True, []

    def failed(_exc):
        nonlocal clean
        clean = False

    try:
        for path, subdirs, files, dir_fd in _fwalk(top, onerror=failed):
            owned = [n for n in subdirs if _stat(n, dir_fd=dir_fd, follow_symlinks=False).st_uid == uid]
            subdirs[:] = owned  # prune: never descend into what is not ours (a read-only venv, ...)
            dirs.extend(f"{path}/{n}" for n in owned)
            for name in files:
                if _stat(name, dir_fd=dir_fd, follow_symlinks=False).st_uid == uid:
                    _unlink(name, dir_fd=dir_fd)
        for path in reversed(dirs):  # deepest first
            _rmdir(path)
    except (OSError, RecursionError):  # a path too long or too deep, a chmod 000 directory, ...
        return False
    return clean


def serve(cfg, fd_in, fd_out, filtered):
    limit = cfg["max_error_chars"]
    writer = CappedWriter(cfg["max_output_chars"])
    sys.stdout = sys.stderr = writer
    send(fd_out, {"hello": True, "seccomp": filtered})
    fn, error = load_program(receive(fd_in), limit)
    send(fd_out, {"error": error} if error else {"ready": True})
    if error:
        os._exit(0)
    while True:
        try:
            msg = receive(fd_in)
        except EOFError:
            os._exit(0)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = usage.ru_utime + usage.ru_stime
        soft = math.ceil(used + msg["cpu_s"])
        if soft >= cfg["lifetime_cpu_s"]:
            send(fd_out, {"recycle": True})  # this process's CPU budget is spent: the pool replaces it
            continue
        resource.setrlimit(resource.RLIMIT_CPU, (soft, cfg["lifetime_cpu_s"]))
        writer.parts.clear()
        writer.size = 0
        try:
            reply = {"value": as_score(fn(*msg["call"]))}
        except BaseException as exc:  # noqa: BLE001 - SystemExit, MemoryError, RecursionError, ...
            reply = {"error": describe(exc, limit)}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        reply["cpu"] = usage.ru_utime + usage.ru_stime - used
        if not clear_scratch(os.getuid()):
            reply["retire"] = True  # something stayed in /tmp: the pool replaces this process (fresh tmpfs)
        send(fd_out, reply)


if __name__ == "__main__":
    launcher(json.loads(sys.argv[1]))
