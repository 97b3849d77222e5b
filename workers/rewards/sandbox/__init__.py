"""Run reward programs in isolated, resource-limited child processes (see workers/rewards/README.md)."""

from workers.rewards.sandbox.pool import CallResult, Program, SandboxPool, SandboxSettings, SandboxWorker

__all__ = ["CallResult", "Program", "SandboxPool", "SandboxSettings", "SandboxWorker"]
