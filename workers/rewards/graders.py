"""Declarative graders: each scores one completion against its dataset row."""

import math
import re
from collections.abc import Callable
from typing import Any

from app.schemas.reward import ExactMatchReward, NumericMatchReward, RewardSpec

Grader = Callable[[str, str, dict[str, Any]], float]  # (prompt, completion, row) -> score

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def exact_match(spec: ExactMatchReward) -> Grader:
    def grade(_prompt: str, completion: str, row: dict[str, Any]) -> float:
        got, want = completion, str(row[spec.field])
        if spec.strip:
            got, want = got.strip(), want.strip()
        if not spec.case_sensitive:
            got, want = got.casefold(), want.casefold()
        return float(got == want)

    return grade


def last_number(text: str) -> float | None:
    """The last number written in `text` (commas in thousands ignored), or None."""
    matches = _NUMBER.findall(text.replace(",", ""))
    return float(matches[-1]) if matches else None


def numeric_match(spec: NumericMatchReward) -> Grader:
    def grade(_prompt: str, completion: str, row: dict[str, Any]) -> float:
        got, want = last_number(completion), last_number(str(row[spec.field]))
        if got is None or want is None or not math.isfinite(got):
            return 0.0
        return float(abs(got - want) <= spec.tolerance)

    return grade


def build_grader(spec: RewardSpec) -> Grader:
    match spec:
        case ExactMatchReward():
            return exact_match(spec)
        case NumericMatchReward():
            return numeric_match(spec)
    raise ValueError(f"unknown reward type {spec.type!r}")
