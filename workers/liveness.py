"""Who runs a job, and whether that process is known to be gone: what lets a redelivered task or the
watchdog take over a job at once after its worker was killed, instead of waiting out the heartbeat timeout.

A worker id is `<host>:<pid>:<random>@<boot id>.<pid namespace>.<start time>`. The suffix says which
process it was beyond doubt: another process on the same kernel (same boot id) and in the same pid
namespace can look it up in /proc, and a pid reused since has another start time. Whenever that is not
the case (another machine or container, an id without the suffix) the process is never called dead:
only its heartbeat can tell then.
"""

from __future__ import annotations

import os
import socket
import uuid
from functools import cache
from pathlib import Path


def new_worker_id() -> str:
    """The id one job attempt writes into job.worker_id (the owner of the job while it runs)."""
    return worker_id_of(os.getpid())


def worker_id_of(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}@{_process_key(pid)}"


def known_dead(worker_id: str | None) -> bool:
    """True only when `worker_id` names a process of this kernel and pid namespace that no longer exists."""
    if not worker_id or "@" not in worker_id:
        return False
    head, _, key = worker_id.rpartition("@")
    host, _, rest = head.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    boot, _, rest = key.partition(".")
    namespace, _, started = rest.partition(".")
    if (boot, namespace) != (_boot_id(), _pid_namespace()) or not started:
        return False  # another machine or container: /proc here says nothing about it
    return _start_time(int(pid_text)) != started  # gone ("" when no such pid), or the pid was reused


def _process_key(pid: int) -> str:
    return f"{_boot_id()}.{_pid_namespace()}.{_start_time(pid)}"


@cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
    except OSError:
        return "unknown"


@cache
def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "unknown"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat); '' if none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    if fields[0] in ("Z", "X"):  # a zombie is dead, only not yet reaped (no init in a container)
        return ""
    return fields[19]
