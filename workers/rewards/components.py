"""Leaf components: one reward spec that scores a whole batch, inline, in the sandbox, or over HTTP.

Each leaf owns its concurrency (the sandbox pool's workers, the verifier's request cap), so the
scorer can run all leaves of a step at once without nested thread pools waiting on each other.
"""

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from app.schemas.reward import (
    HttpReward,
    JsonSchemaReward,
    JudgeLabelReward,
    JudgeScoreReward,
    MathEquivalenceReward,
    PythonReward,
)
from workers.rewards.graders import Grader, TokenCounter, build_inline_grader
from workers.rewards.programs import program_source
from workers.rewards.sandbox import Program, SandboxPool, SandboxSettings

BUILTIN_GRACE_S = 2.0  # built-in programs time themselves out first (SIGALRM); the kill comes this much later
BUILTIN_BATCH_TIMEOUT_S = 600.0  # per-step budget of a built-in sandboxed grader
BUILTIN_MEMORY_MB = 1024  # sympy and its caches need more than a typical user reward


@dataclass(slots=True)
class Outcome:
    """One completion's result from one leaf: a value, 'not applicable' (both None), or an error."""

    value: float | None = None
    error: str | None = None
    latency_s: float = 0.0


@dataclass(frozen=True)
class BuildContext:
    count_tokens: TokenCounter | None = None
    sandbox: SandboxSettings | None = None
    http_allow_private: bool = False
    judges: Any = None  # workers.rewards.judge.JudgeResolver: where judge rewards send their calls
    group_size: int | None = None  # for group-relative judging


class Leaf:
    """A reward spec that scores batches. `inline` leaves run in the caller's thread."""

    inline = False

    def __init__(self, name: str, spec: Any) -> None:
        self.name, self.spec = name, spec

    def score(self, prompts: list[str], completions: list[str], rows: list[dict[str, Any]]) -> list[Outcome]:
        raise NotImplementedError

    def close(self) -> None:
        """Release processes and connections; the leaf is unusable afterwards."""


class InlineLeaf(Leaf):
    inline = True

    def __init__(self, name: str, spec: Any, grade: Grader) -> None:
        super().__init__(name, spec)
        self._grade = grade

    def score(self, prompts: list[str], completions: list[str], rows: list[dict[str, Any]]) -> list[Outcome]:
        outcomes = []
        for prompt, completion, row in zip(prompts, completions, rows, strict=True):
            started = time.perf_counter()
            try:
                value = self._grade(prompt, completion, row)
                outcome = Outcome(value=value)
            except Exception as exc:  # noqa: BLE001 - a grader failure is a recorded error, never a crash
                outcome = Outcome(error=f"{type(exc).__name__}: {exc}"[:1000])
            outcome.latency_s = time.perf_counter() - started
            outcomes.append(outcome)
        return outcomes


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float  # per call, wall (the pool kills the process past it)
    cpu_s: int  # per call, RLIMIT_CPU
    batch_timeout_s: float  # per step, wall
    batch_cpu_s: float | None  # per step, CPU reported by the sandbox


class SandboxLeaf(Leaf):
    """Scores with a program in a pool of sandbox processes: one call per completion, in parallel."""

    def __init__(
        self, name: str, spec: Any, program: Program, limits: SandboxLimits, settings: SandboxSettings
    ) -> None:
        super().__init__(name, spec)
        self.limits = limits
        self.pool = SandboxPool(program, settings)
        self._executor = ThreadPoolExecutor(max_workers=self.pool.settings.workers, thread_name_prefix=f"sbx-{name}")

    def score(self, prompts: list[str], completions: list[str], rows: list[dict[str, Any]]) -> list[Outcome]:
        limits = self.limits
        deadline = time.monotonic() + limits.batch_timeout_s
        cpu = _Counter()

        def one(i: int) -> Outcome:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Outcome(error=f"step time budget of {limits.batch_timeout_s:g} s spent before this completion")
            if limits.batch_cpu_s is not None and cpu.value >= limits.batch_cpu_s:
                return Outcome(error=f"step CPU budget of {limits.batch_cpu_s:g} s spent before this completion")
            cut = remaining < limits.timeout_s  # the step budget, not the call limit, bounds this call
            result = self.pool.call(
                [prompts[i], completions[i], rows[i]], min(limits.timeout_s, remaining), limits.cpu_s
            )
            cpu.add(result.cpu_s)
            error = result.error
            if cut and error is not None and error.startswith("timed out"):
                error = f"step time budget of {limits.batch_timeout_s:g} s spent while scoring this one"
            return Outcome(value=result.value, error=error, latency_s=result.latency_s)

        return list(self._executor.map(one, range(len(completions))))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.pool.close()


class _Counter:
    def __init__(self) -> None:
        self.value, self._lock = 0.0, threading.Lock()

    def add(self, amount: float) -> None:
        with self._lock:
            self.value += amount


def _builtin(name: str, spec: Any, program: str, config: dict[str, Any], ctx: BuildContext) -> SandboxLeaf:
    limits = SandboxLimits(
        timeout_s=spec.timeout_s + BUILTIN_GRACE_S,
        cpu_s=math.ceil(spec.timeout_s + BUILTIN_GRACE_S),
        batch_timeout_s=BUILTIN_BATCH_TIMEOUT_S,
        batch_cpu_s=None,
    )
    source = Program(program_source(program), config, memory_mb=BUILTIN_MEMORY_MB, builtin=True)
    return SandboxLeaf(name, spec, source, limits, ctx.sandbox or SandboxSettings())


def _python(name: str, spec: PythonReward, ctx: BuildContext) -> SandboxLeaf:
    limits = SandboxLimits(
        timeout_s=spec.timeout_s,
        cpu_s=spec.cpu_time_s or math.ceil(spec.timeout_s),
        batch_timeout_s=spec.batch_timeout_s,
        batch_cpu_s=spec.batch_cpu_s,
    )
    return SandboxLeaf(name, spec, Program(spec.code, {}, spec.memory_mb), limits, ctx.sandbox or SandboxSettings())


def build_leaf(name: str, spec: Any, ctx: BuildContext) -> Leaf:
    """The leaf for a non-multi spec. Sandboxed leaves start their processes here (fail fast)."""
    grade = build_inline_grader(spec, ctx.count_tokens)
    if grade is not None:
        return InlineLeaf(name, spec, grade)
    builders: dict[type, Callable[[], Leaf]] = {
        MathEquivalenceReward: lambda: _builtin(name, spec, "math_equivalence", spec.model_dump(), ctx),
        JsonSchemaReward: lambda: _builtin(name, spec, "json_schema", spec.model_dump(), ctx),
        PythonReward: lambda: _python(name, spec, ctx),
        HttpReward: lambda: _http(name, spec, ctx),
        JudgeScoreReward: lambda: _judge(name, spec, ctx),
        JudgeLabelReward: lambda: _judge(name, spec, ctx),
    }
    if type(spec) not in builders:
        raise ValueError(f"unknown reward type {spec.type!r}")
    return builders[type(spec)]()


def _http(name: str, spec: HttpReward, ctx: BuildContext) -> Leaf:
    from workers.rewards.http_verifier import HttpLeaf  # httpx is only imported when a job uses it

    return HttpLeaf(name, spec, allow_private=ctx.http_allow_private)


def _judge(name: str, spec: JudgeScoreReward | JudgeLabelReward, ctx: BuildContext) -> Leaf:
    from workers.rewards.http_verifier import check_public_host
    from workers.rewards.judge import JudgeLeaf

    if spec.judge.base_url is not None and not ctx.http_allow_private:
        check_public_host(str(spec.judge.base_url))  # as for http rewards: no calls into the deployment
    return JudgeLeaf(name, spec, ctx.judges, ctx.group_size)
