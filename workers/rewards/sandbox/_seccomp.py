"""A seccomp-BPF deny list for the sandbox worker: defence in depth behind namespaces and the uid drop.

Standard library only (imported by _child.py before pivot_root). The filter makes the listed system
calls fail with EPERM (clone3 with ENOSYS, so libc falls back to clone, which RLIMIT_NPROC bounds).
They are the ones a contained process needs none of and that carry most kernel privilege-escalation
history: creating namespaces (an unprivileged user namespace would hand the program capabilities
over fresh kernel code), mounting, ptrace and cross-process memory access, bpf, perf, io_uring,
userfaultfd, keyrings, module and kexec loading. Only x86_64 is listed (the syscall numbers are
verified there); on other architectures `install` reports False and the sandbox runs without it.
"""

import ctypes
import errno
import platform
import struct

PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
LD_W_ABS, JEQ_K, JGE_K, RET_K = 0x20, 0x15, 0x35, 0x06
DATA_NR, DATA_ARCH = 0, 4  # offsets in struct seccomp_data

DENIED_X86_64 = {
    "ptrace": 101,
    "syslog": 103,
    "personality": 135,
    "chroot": 161,
    "acct": 163,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "pivot_root": 155,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
}
ENOSYS_X86_64 = {"clone3": 435}


def _op(code, k, jt=0, jf=0):
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter():
    """The BPF program: wrong architecture or x32 ABI -> kill; listed calls -> errno; rest allowed."""
    denied, enosys = sorted(DENIED_X86_64.values()), sorted(ENOSYS_X86_64.values())
    prog = [
        _op(LD_W_ABS, DATA_ARCH),
        _op(JEQ_K, AUDIT_ARCH_X86_64, jt=1),
        _op(RET_K, RET_KILL_PROCESS),
        _op(LD_W_ABS, DATA_NR),
        _op(JGE_K, X32_SYSCALL_BIT, jt=0, jf=1),
        _op(RET_K, RET_KILL_PROCESS),
    ]
    # Each check jumps forward over the remaining checks and the ALLOW to its return instruction.
    checks = [(nr, 1) for nr in denied] + [(nr, 2) for nr in enosys]
    for index, (nr, target) in enumerate(checks):
        remaining = len(checks) - index - 1
        prog.append(_op(JEQ_K, nr, jt=remaining + target))
    prog += [_op(RET_K, RET_ALLOW), _op(RET_K, RET_ERRNO | errno.EPERM), _op(RET_K, RET_ERRNO | errno.ENOSYS)]
    return b"".join(prog), len(prog)


def install(libc):
    """Install the filter on this thread (the worker is single-threaded). Needs PR_SET_NO_NEW_PRIVS.
    Returns False when the architecture has no verified list; raises OSError if the kernel refuses."""
    if platform.machine() != "x86_64":
        return False
    code, length = build_filter()
    buffer = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(length, ctypes.addressof(buffer))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp filter: {errno.errorcode.get(err, err)}")
    return True
