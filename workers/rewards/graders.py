"""Declarative graders that run inline: each scores one completion against its dataset row.

All of them take time linear in the completion length (regex is bounded by its timeout), so the
scorer calls them in its own thread. Graders that parse with sympy (math_equivalence) or run a
user schema (json_schema) run in the sandbox instead: see programs/.
"""

import math
import re
import time
from collections.abc import Callable
from typing import Any

import regex

from app.schemas.reward import (
    ExactMatchReward,
    FormatReward,
    LengthReward,
    NumericMatchReward,
    RegexReward,
    StringCheckReward,
    TextSimilarityReward,
)
from workers.rewards.errors import RewardConfigError
from workers.rewards.similarity import chrf, edit_ratio

Grader = Callable[[str, str, dict[str, Any]], float | None]  # (prompt, completion, row) -> score | None
TokenCounter = Callable[[str], int]

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def reference(row: dict[str, Any], field: str) -> str:
    """The row's reference as text; a missing field is an error of the call, not a 0 score."""
    if field not in row:
        raise KeyError(f"row has no field {field!r} (fields: {sorted(row)[:10]})")
    value = row[field]
    return value if isinstance(value, str) else str(value)


def exact_match(spec: ExactMatchReward) -> Grader:
    def grade(_prompt: str, completion: str, row: dict[str, Any]) -> float:
        got, want = completion, reference(row, spec.field)
        if spec.strip:
            got, want = got.strip(), want.strip()
        if not spec.case_sensitive:
            got, want = got.casefold(), want.casefold()
        return float(got == want)

    return grade


_OPERATIONS: dict[str, Callable[[str, str], bool]] = {
    "eq": lambda got, want: got == want,
    "ne": lambda got, want: got != want,
    "contains": lambda got, want: want in got,
    "not_contains": lambda got, want: want not in got,
    "starts_with": lambda got, want: got.startswith(want),
    "ends_with": lambda got, want: got.endswith(want),
}


def string_check(spec: StringCheckReward) -> Grader:
    operation = _OPERATIONS[spec.operation]

    def grade(_prompt: str, completion: str, row: dict[str, Any]) -> float:
        got = completion
        want = spec.value if spec.value is not None else reference(row, spec.field)
        if spec.strip:
            got, want = got.strip(), want.strip()
        if not spec.case_sensitive:
            got, want = got.casefold(), want.casefold()
        return float(operation(got, want))

    return grade


def last_number(text: str) -> float | None:
    """The last number written in `text` (commas in thousands ignored), or None."""
    matches = _NUMBER.findall(text.replace(",", ""))
    return float(matches[-1]) if matches else None


def numeric_match(spec: NumericMatchReward) -> Grader:
    def grade(_prompt: str, completion: str, row: dict[str, Any]) -> float:
        want = last_number(reference(row, spec.field))
        if want is None:
            raise ValueError(f"reference {row[spec.field]!r} in field {spec.field!r} holds no number")
        got = last_number(completion)
        if got is None or not math.isfinite(got):
            return 0.0
        return float(abs(got - want) <= spec.tolerance)

    return grade


def regex_match(spec: RegexReward) -> Grader:
    flags = regex.VERSION0  # Python `re` semantics
    flags |= regex.IGNORECASE if spec.ignore_case else 0
    flags |= regex.MULTILINE if spec.multiline else 0
    flags |= regex.DOTALL if spec.dotall else 0
    pattern = regex.compile(spec.pattern, flags)

    def grade(_prompt: str, completion: str, _row: dict[str, Any]) -> float:
        # The regex module checks `timeout` inside its matching loop, from any thread (re has no
        # timeout and a signal would only work in the main thread); concurrent=True releases the GIL.
        if spec.mode == "search":
            score = float(pattern.search(completion, timeout=spec.timeout_s, concurrent=True) is not None)
        elif spec.mode == "fullmatch":
            score = float(pattern.fullmatch(completion, timeout=spec.timeout_s, concurrent=True) is not None)
        else:
            score = _count(pattern, completion, spec.max_count, spec.timeout_s) / spec.max_count
        return 1.0 - score if spec.negate else score

    return grade


def _count(pattern: regex.Pattern[str], text: str, cap: int, timeout_s: float) -> int:
    """Non-overlapping matches, up to `cap`, within `timeout_s` in total (raises TimeoutError)."""
    deadline = time.monotonic() + timeout_s
    count, position = 0, 0
    while count < cap and position <= len(text):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("regex timed out")
        match = pattern.search(text, position, timeout=remaining, concurrent=True)
        if match is None:
            break
        count += 1
        position = match.end() + (match.end() == match.start())  # step past an empty match
    return count


def format_check(spec: FormatReward) -> Grader:
    blocks = [(f"<{tag}>", f"</{tag}>") for tag in spec.tags]

    def grade(_prompt: str, completion: str, _row: dict[str, Any]) -> float:
        # str.find/str.count keep this linear; a regex with lazy groups can backtrack quadratically.
        position = 0
        for opening, closing in blocks:
            if completion.count(opening) != 1 or completion.count(closing) != 1:
                return 0.0
            start, end = completion.find(opening), completion.find(closing)
            if start < position or end < start:
                return 0.0
            if spec.strict and completion[position:start].strip():
                return 0.0
            content = completion[start + len(opening) : end]
            if spec.require_content and not content.strip():
                return 0.0
            position = end + len(closing)
        if spec.strict and completion[position:].strip():
            return 0.0
        return 1.0

    return grade


def overlong_penalty(length: int, spec: LengthReward) -> float:
    """DAPO's soft overlong punishment with a lower bound; formula in LengthReward's docstring."""
    buffer = spec.effective_buffer
    if length < spec.min_length or length > spec.max_length:
        return -1.0
    if length <= spec.max_length - buffer:
        return 0.0
    return (spec.max_length - buffer - length) / buffer


def length_penalty(spec: LengthReward, count_tokens: TokenCounter | None) -> Grader:
    if spec.unit == "tokens" and count_tokens is None:
        raise RewardConfigError(
            "a length reward with unit='tokens' needs the model's tokenizer, which is not available "
            "here; use unit='chars' or score it in the worker",
            param="unit",
        )
    measure: TokenCounter = count_tokens if spec.unit == "tokens" else len  # type: ignore[assignment]

    def grade(_prompt: str, completion: str, _row: dict[str, Any]) -> float:
        return overlong_penalty(measure(completion), spec)

    return grade


def text_similarity(spec: TextSimilarityReward) -> Grader:
    def grade(_prompt: str, completion: str, row: dict[str, Any]) -> float:
        got, want = completion[: spec.max_chars], reference(row, spec.field)[: spec.max_chars]
        if spec.strip:
            got, want = got.strip(), want.strip()
        if not spec.case_sensitive:
            got, want = got.casefold(), want.casefold()
        if spec.metric == "chrf":
            return chrf(got, want, spec.char_order, spec.beta)
        return edit_ratio(got, want)

    return grade


def build_inline_grader(spec: Any, count_tokens: TokenCounter | None = None) -> Grader | None:
    """The inline grader for `spec`, or None when the spec runs elsewhere (sandbox, http)."""
    match spec:
        case ExactMatchReward():
            return exact_match(spec)
        case StringCheckReward():
            return string_check(spec)
        case NumericMatchReward():
            return numeric_match(spec)
        case RegexReward():
            return regex_match(spec)
        case FormatReward():
            return format_check(spec)
        case LengthReward():
            return length_penalty(spec, count_tokens)
        case TextSimilarityReward():
            return text_similarity(spec)
    return None
