"""User-supplied scorers: python code run in the sandbox, and a remote HTTP verifier."""

import ast
from typing import Literal

from pydantic import AnyHttpUrl, Field, field_validator

from app.schemas.reward.base import RewardBase


class PythonReward(RewardBase):
    """User code `def reward(prompt, completion, row) -> float | None`, run in the sandbox (README)."""

    type: Literal["python"] = "python"
    code: str = Field(
        ...,
        min_length=1,
        max_length=65536,
        description="Source defining reward(prompt, completion, row).",
    )
    timeout_s: float = Field(
        2.0,
        gt=0.0,
        le=60.0,
        description="Wall-time limit per completion; the process is killed past it.",
    )
    cpu_time_s: int | None = Field(
        None,
        ge=1,
        le=60,
        description="CPU-time limit per completion; None: ceil(timeout_s).",
    )
    memory_mb: int = Field(
        512,
        ge=64,
        le=8192,
        description="Address-space limit (RLIMIT_AS) of the sandbox process.",
    )
    batch_timeout_s: float = Field(
        300.0,
        gt=0.0,
        le=3600.0,
        description="Wall-time budget per step; completions not scored by then fail.",
    )
    batch_cpu_s: float | None = Field(
        None,
        gt=0.0,
        description="CPU-time budget per step; completions not started by then fail. None: no budget.",
    )

    @field_validator("code")
    @classmethod
    def _defines_reward(cls, code: str) -> str:
        check_reward_source(code)
        return code


class HttpReward(RewardBase):
    """A remote verifier. POST {url} with {"reward": name, "items": [{"prompt", "completion", "row"}, ...]};
    it answers 200 with {"scores": [number | null, ...]} (same length and order; null: not applicable) and
    optionally "errors": [null | "message", ...] to fail single items."""

    type: Literal["http"] = "http"
    url: AnyHttpUrl = Field(..., description="Verifier endpoint (http or https).")
    headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=16,
        description="Extra request headers, e.g. Authorization; stored with the definition.",
    )
    timeout_s: float = Field(
        10.0,
        gt=0.0,
        le=300.0,
        description="Limit per request (connect + send + full response).",
    )
    retries: int = Field(2, ge=0, le=10, description="Retries after a connection error, timeout, 429 or 5xx.")
    backoff_s: float = Field(
        0.5,
        ge=0.0,
        le=60.0,
        description="First retry delay; doubles each retry (Retry-After wins).",
    )
    backoff_max_s: float = Field(8.0, ge=0.0, le=300.0, description="Cap on one retry delay.")
    batch_size: int = Field(16, ge=1, le=1024, description="Completions per request.")
    max_concurrency: int = Field(4, ge=1, le=64, description="Requests in flight at once for this reward.")


def check_reward_source(code: str) -> None:
    """Static checks of python reward code (no execution): syntax, and a top-level `def reward` that
    can be called with three positional arguments. Raises ValueError with the line at fault."""
    try:
        tree = ast.parse(code, filename="<reward>")
    except SyntaxError as exc:
        raise ValueError(f"syntax error at line {exc.lineno}: {exc.msg}") from None
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    defs = [n for n in tree.body if isinstance(n, functions) and n.name == "reward"]
    if not defs:
        raise ValueError("code must define a top-level function: def reward(prompt, completion, row)")
    fn = defs[-1]
    if isinstance(fn, ast.AsyncFunctionDef):
        raise ValueError(f"line {fn.lineno}: reward must be a plain function, not async")
    positional = len(fn.args.posonlyargs) + len(fn.args.args)
    required = positional - len(fn.args.defaults)
    required_kw = [a.arg for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True) if d is None]
    if required > 3 or (positional < 3 and fn.args.vararg is None) or required_kw:
        raise ValueError(f"line {fn.lineno}: reward must accept exactly (prompt, completion, row)")
