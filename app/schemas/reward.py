"""Reward definitions: a discriminated union on `type`, plus the reward-test and safeguard schemas.

These are the declarative specs users send; workers/rewards turns them into scoring callables.
Graders that compare against a reference read the dataset row field named by `field`.
Every score is a float; `None` from a grader means "not applicable" (left out of the total).
"""

import ast
import json
from typing import Annotated, Literal

import regex
from jsonschema import SchemaError
from jsonschema.validators import validator_for
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from app.core.sanitize import SafeText
from app.schemas.judge import JudgeLabelFields, JudgeScoreFields

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
FIELD_DESC = "Dataset row field holding the reference."


class RewardBase(BaseModel):
    """Fields every reward has: its name and weight in the total, and what a failed call counts as."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description="Component name used in metrics (reward/<name>/...). Defaults to the type, "
        "suffixed with its position when a type repeats.",
    )
    weight: float = Field(
        1.0,
        ge=-100.0,
        le=100.0,
        description="Weight of this component in the total reward.",
    )
    on_error: Literal["score", "skip"] = Field(
        "score",
        description="What a failed call (exception, timeout, crash, non-numeric or non-finite return, "
        "unreachable verifier) counts as. 'score': the value error_score. 'skip': the component is left "
        "out of that completion's total and its raw value is NaN (like a 'not applicable' None).",
    )
    error_score: float = Field(
        0.0,
        ge=-100.0,
        le=100.0,
        description="Score of a failed call when on_error='score'.",
    )
    max_error_rate: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Largest fraction of a step's completions this component may fail on. Above it the "
        "job fails with a reward_error naming the reward, the count and sample failures. 1.0 never fails.",
    )


class ExactMatchReward(RewardBase):
    """1.0 when the completion equals the reference, else 0.0."""

    type: Literal["exact_match"] = "exact_match"
    field: str = Field("answer", min_length=1, description=FIELD_DESC)
    strip: bool = Field(True, description="Ignore leading and trailing whitespace on both sides.")
    case_sensitive: bool = Field(True, description="Compare case-sensitively.")


class StringCheckReward(RewardBase):
    """1.0 when `completion <operation> reference` holds, else 0.0 (contains: reference in completion)."""

    type: Literal["string_check"] = "string_check"
    operation: Literal["eq", "ne", "contains", "not_contains", "starts_with", "ends_with"] = Field(
        "eq", description="Comparison; contains/starts_with/ends_with test the completion for the reference."
    )
    field: str = Field("answer", min_length=1, description=FIELD_DESC + " Ignored when `value` is set.")
    value: str | None = Field(None, max_length=10000, description="A fixed reference instead of a row field.")
    strip: bool = Field(True, description="Ignore leading and trailing whitespace on both sides.")
    case_sensitive: bool = Field(True, description="Compare case-sensitively (False: Unicode casefold).")


class NumericMatchReward(RewardBase):
    """1.0 when the last number in the completion is within `tolerance` of the reference's last number."""

    type: Literal["numeric_match"] = "numeric_match"
    field: str = Field("answer", min_length=1, description="Dataset field holding the reference number.")
    tolerance: float = Field(
        1e-6, ge=0.0, description="Absolute tolerance; the last number in the completion is compared."
    )


class RegexReward(RewardBase):
    """Pattern test on the completion, with the `regex` module's per-match timeout (no catastrophic hang)."""

    type: Literal["regex"] = "regex"
    pattern: str = Field(
        ...,
        min_length=1,
        max_length=1000,
        description="Pattern (Python `re` syntax); at most 1000 chars.",
    )
    mode: Literal["search", "fullmatch", "count"] = Field(
        "search",
        description="search: 1.0 if the pattern occurs; fullmatch: 1.0 if the whole completion matches; "
        "count: min(n, max_count) / max_count with n non-overlapping matches.",
    )
    max_count: int = Field(1, ge=1, le=1000, description="count mode: the match count that earns 1.0.")
    negate: bool = Field(False, description="Score 1 - s instead of s (reward the absence of the pattern).")
    ignore_case: bool = Field(False, description="Case-insensitive matching.")
    multiline: bool = Field(False, description="^ and $ match at line boundaries.")
    dotall: bool = Field(False, description=". also matches newlines.")
    timeout_s: float = Field(
        1.0,
        gt=0.0,
        le=10.0,
        description="Per-completion match time limit; past it the call fails.",
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            regex.compile(pattern, regex.VERSION0)
        except regex.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return pattern


class MathEquivalenceReward(RewardBase):
    """1.0 when the extracted final answer is mathematically equivalent to the reference (math-verify)."""

    type: Literal["math_equivalence"] = "math_equivalence"
    field: str = Field(
        "answer",
        min_length=1,
        description=FIELD_DESC + " E.g. '\\frac{1}{2}', '0.5', '2x+1'.",
    )
    extraction: Literal["boxed", "marker", "boxed_or_marker", "any"] = Field(
        "boxed_or_marker",
        description="Where the answer is: 'boxed' the last \\boxed{...}; 'marker' the rest of the line after "
        "the last `marker`; 'boxed_or_marker' boxed, else marker; 'any' math-verify's own extraction over "
        "the "
        "whole completion (lenient: also takes e.g. the last number). No answer found scores 0.0.",
    )
    marker: str = Field(
        "Answer:",
        min_length=1,
        max_length=50,
        description="Answer marker (case-insensitive).",
    )
    float_rounding: int = Field(
        6,
        ge=0,
        le=15,
        description="Decimal places numbers are rounded to before comparing.",
    )
    strict: bool = Field(True, description="math-verify strict mode: variable names matter, sets != tuples.")
    timeout_s: float = Field(
        5.0,
        gt=0.0,
        le=60.0,
        description="Per-completion limit (parse + compare); past it the call fails.",
    )


class JsonSchemaReward(RewardBase):
    """1.0 when the completion parses as JSON and validates against `json_schema`."""

    type: Literal["json_schema"] = "json_schema"
    json_schema: dict[str, JsonValue] = Field(
        ...,
        description="A JSON Schema (draft from its $schema, default 2020-12).",
    )
    allow_code_fence: bool = Field(
        True,
        description="Take the last ```...``` block when the completion has one.",
    )
    parse_only_score: float = Field(
        0.0,
        ge=-100.0,
        le=100.0,
        description="Score of valid JSON that fails the schema.",
    )
    timeout_s: float = Field(
        2.0,
        gt=0.0,
        le=60.0,
        description="Per-completion limit; past it the call fails.",
    )

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, JsonValue]) -> dict[str, JsonValue]:
        if len(json.dumps(schema)) > 65536:
            raise ValueError("schema larger than 64 KiB")
        try:
            validator_for(schema).check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"invalid JSON Schema: {exc.message}") from None
        return schema


class FormatReward(RewardBase):
    """1.0 when the completion has the tagged blocks in order, e.g. <think>...</think><answer>...</answer>."""

    type: Literal["format"] = "format"
    tags: list[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")]] = Field(
        default_factory=lambda: ["think", "answer"],
        min_length=1,
        max_length=8,
        description="Tag names, in the order their <tag>...</tag> blocks must appear, each exactly once.",
    )
    strict: bool = Field(
        True,
        description="Nothing but whitespace may surround the blocks (False: any text).",
    )
    require_content: bool = Field(True, description="Each block must contain non-whitespace text.")


class LengthReward(RewardBase):
    """Length window with DAPO's soft overlong penalty; a penalty in [-1, 0], combine it with a weight.

    With L the completion length, L_max = max_length, B = buffer (DAPO's L_cache):
      L < min_length: -1;  L <= L_max - B: 0;  L_max - B < L <= L_max: (L_max - B - L) / B;  L > L_max: -1.
    """

    type: Literal["length"] = "length"
    unit: Literal["chars", "tokens"] = Field(
        "chars",
        description="'chars' (default): exact and model-independent, so the same reward definition works for "
        "any model and in the reward test endpoint. 'tokens': DAPO's unit, aligned with max_new_tokens, but "
        "it needs the job model's tokenizer (the worker provides it; re-tokenising text can differ from the "
        "generated ids by a token or two).",
    )
    max_length: int = Field(..., ge=1, description="L_max: beyond it the score is -1.")
    buffer: int | None = Field(
        None,
        ge=1,
        description="L_cache: width of the linear ramp from 0 to -1. None: max_length // 5 (as DAPO).",
    )
    min_length: int = Field(
        0,
        ge=0,
        description="Completions shorter than this score -1; 0 disables the lower bound.",
    )

    @model_validator(mode="after")
    def _window(self) -> "LengthReward":
        buffer = self.effective_buffer
        if buffer > self.max_length:
            raise ValueError(f"buffer ({buffer}) must not exceed max_length ({self.max_length})")
        if self.min_length > self.max_length - buffer:
            limit = self.max_length - buffer
            raise ValueError(f"min_length ({self.min_length}) must be <= max_length - buffer ({limit})")
        return self

    @property
    def effective_buffer(self) -> int:
        return self.buffer if self.buffer is not None else max(1, self.max_length // 5)


class TextSimilarityReward(RewardBase):
    """Similarity in [0, 1] to a reference text: chrF or normalised edit-distance ratio."""

    type: Literal["text_similarity"] = "text_similarity"
    field: str = Field("answer", min_length=1, description=FIELD_DESC)
    metric: Literal["chrf", "edit_ratio"] = Field(
        "chrf",
        description="chrf: character n-gram F-beta score (n = 1..char_order, whitespace ignored; precision "
        "and "
        "recall averaged over n, then F_beta). edit_ratio: 1 - Levenshtein(a, b) / max(len a, len b).",
    )
    char_order: int = Field(6, ge=1, le=10, description="chrf: largest character n-gram (chrF uses 6).")
    beta: float = Field(
        2.0,
        gt=0.0,
        le=10.0,
        description="chrf: recall weighs beta times as much as precision.",
    )
    strip: bool = Field(True, description="Ignore leading and trailing whitespace on both sides.")
    case_sensitive: bool = Field(True, description="Compare case-sensitively.")
    max_chars: int = Field(
        10000,
        ge=1,
        le=100000,
        description="Both texts are cut to this many characters (bounds time).",
    )


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


class MultiReward(BaseModel):
    """Combination of sub-rewards, scored as one component. Over the sub-scores s_i (weights w_i) that
    are not skipped: weighted_sum = sum w_i s_i; weighted_mean = sum w_i s_i / sum w_i (w_i > 0);
    min / max = min_i s_i / max_i s_i (weights ignored: 'min' is a logical AND of 0/1 checks).
    No sub-score left: the component is not applicable for that completion."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["multi"] = "multi"
    name: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description=RewardBase.model_fields["name"].description,
    )
    weight: float = Field(
        1.0,
        ge=-100.0,
        le=100.0,
        description="Weight of this component in the total reward.",
    )
    components: list["RewardSpec"] = Field(
        ...,
        min_length=1,
        max_length=16,
        description="Sub-rewards; their own errors follow their own on_error.",
    )
    aggregate: Literal["weighted_sum", "weighted_mean", "min", "max"] = Field(
        "weighted_mean",
        description="See the class formula.",
    )

    @model_validator(mode="after")
    def _check(self) -> "MultiReward":
        if self.aggregate == "weighted_mean" and any(c.weight <= 0 for c in self.components):
            raise ValueError("aggregate 'weighted_mean' needs positive sub-reward weights")
        if _depth(self) > 3:
            raise ValueError("multi rewards nest at most 3 levels deep")
        return self


def _depth(spec: "MultiReward") -> int:
    return 1 + max((_depth(c) for c in spec.components if isinstance(c, MultiReward)), default=0)


class JudgeScoreReward(JudgeScoreFields, RewardBase):
    """LLM-as-judge: a model scores the completion (fields and parsing in app/schemas/judge.py)."""


class JudgeLabelReward(JudgeLabelFields, RewardBase):
    """LLM-as-judge: a model picks a label; passing labels score 1 (app/schemas/judge.py)."""


RewardSpec = Annotated[
    ExactMatchReward
    | StringCheckReward
    | NumericMatchReward
    | RegexReward
    | MathEquivalenceReward
    | JsonSchemaReward
    | FormatReward
    | LengthReward
    | TextSimilarityReward
    | MultiReward
    | PythonReward
    | HttpReward
    | JudgeScoreReward
    | JudgeLabelReward,
    Field(discriminator="type"),
]
MultiReward.model_rebuild()


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


# --- reward test endpoint ---------------------------------------------------------------------------
class RewardSample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field("", max_length=200000, description="The prompt text, as the engine passes it.")
    completion: str = Field(..., max_length=200000, description="The completion to score.")
    row: dict[str, JsonValue] = Field(default_factory=dict, description="The dataset row (reference fields).")


class RewardSampleScore(BaseModel):
    total: float | None = Field(
        ...,
        description="Weighted sum of the components that produced a score; null when none did (the sample "
        "is unscorable: training leaves such a completion out of its group's baseline, advantage 0).",
    )
    components: dict[SafeText, float | None] = Field(
        ...,
        description="Raw score per component (multi sub-rewards as 'multi/sub'); null: not applicable, or "
        "failed with on_error='skip'.",
    )
    errors: dict[SafeText, SafeText] = Field(default_factory=dict, description="Error message per failed component.")


# --- reward-hacking safeguards ----------------------------------------------------------------------
class SafeguardSpec(BaseModel):
    """Reward-hacking detectors run on every step's metrics (workers/rewards/monitor.py). Each alert
    fires once when its condition starts to hold and re-arms when it clears."""

    model_config = ConfigDict(extra="forbid")

    on_alert: Literal["record", "stop", "pause"] = Field(
        "record",
        description="'record': an alert event only; 'stop': also stop the job; 'pause': checkpoint and pause "
        "the job for a person to look (POST /jobs/{id}/resume continues it).",
    )
    window: int = Field(
        10,
        ge=2,
        le=1000,
        description="Steps per window; trends compare the last window with the one before.",
    )
    reward_rise: float = Field(
        0.05,
        ge=0.0,
        description="Divergence: train reward mean rose by at least this over `eval_window` evals...",
    )
    accuracy_drop: float = Field(
        0.02,
        ge=0.0,
        description="...while held-out accuracy fell by at least this.",
    )
    eval_window: int = Field(
        3,
        ge=2,
        le=100,
        description="Divergence: number of consecutive held-out evaluations compared.",
    )
    length_growth: float = Field(
        2.0,
        gt=1.0,
        description="Length blow-up: window mean completion length >= this x the first window's.",
    )
    repetition_threshold: float = Field(
        0.3,
        gt=0.0,
        le=1.0,
        description="Repetition: window mean n-gram repeat ratio at or above this...",
    )
    repetition_rise: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="...and at least this much above the first window's.",
    )
    saturation_zero_std: float = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="Saturation: window mean fraction of groups whose rewards all tie (no signal)...",
    )
    entropy_collapse: float = Field(
        0.2,
        gt=0.0,
        lt=1.0,
        description="...with mean entropy below this fraction of the first window's.",
    )
    identical_threshold: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Identical completions: window mean duplicate fraction in groups.",
    )
