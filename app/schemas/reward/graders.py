"""Built-in graders: reference checks (exact, string, numeric, regex, math, JSON schema), format,
length and text similarity."""

import json
from typing import Annotated, Literal

import regex
from jsonschema import SchemaError
from jsonschema.validators import validator_for
from pydantic import Field, JsonValue, field_validator, model_validator

from app.schemas.reward.base import FIELD_DESC, RewardBase


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
