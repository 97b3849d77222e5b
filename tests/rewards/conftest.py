"""Shared helpers for the reward tests."""

import os
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


@pytest.fixture
def no_leaked_sandboxes():
    """Fails the test if sandbox processes outlive it."""
    yield
    assert sandbox_pids() == [], "sandbox processes survived their pool"


requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root (namespaces)")
