"""Reward spec validation: bad specs fail at parse time with an error naming the field."""

import pytest
from pydantic import ValidationError

from app.schemas.job import JobSpec
from app.schemas.reward import ExactMatchReward, NumericMatchReward, SafeguardSpec
from tests.utils.rewards import specs


def error_of(spec: dict) -> tuple[tuple, str]:
    with pytest.raises(ValidationError) as info:
        specs(spec)
    first = info.value.errors()[0]
    return first["loc"], first["msg"]


def test_every_type_parses_with_its_defaults() -> None:
    parsed = specs(
        {"type": "exact_match"},
        {"type": "string_check", "operation": "contains"},
        {"type": "numeric_match"},
        {"type": "regex", "pattern": r"\d+"},
        {"type": "math_equivalence"},
        {"type": "json_schema", "json_schema": {"type": "object"}},
        {"type": "format"},
        {"type": "length", "max_length": 100},
        {"type": "text_similarity"},
        {"type": "multi", "components": [{"type": "format"}, {"type": "exact_match"}]},
        {"type": "python", "code": "def reward(prompt, completion, row):\n    return 1.0\n"},
        {"type": "http", "url": "https://verifier.example.com/score"},
    )
    assert [p.type for p in parsed][-1] == "http"
    assert isinstance(parsed[0], ExactMatchReward)
    assert all(p.on_error == "score" and p.max_error_rate == 0.1 for p in parsed if p.type != "multi")


def test_job_spec_still_uses_the_union() -> None:
    spec = JobSpec.model_validate(
        {
            "model": {"source": "tiny-demo"},
            "dataset": {"rows": [{"prompt": "p", "answer": "1"}]},
            "rewards": [{"type": "numeric_match"}, {"type": "format", "weight": 0.5}],
        }
    )
    assert isinstance(spec.rewards[0], NumericMatchReward) and spec.rewards[1].weight == 0.5


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"type": "regex", "pattern": "(unclosed"}, "pattern", "invalid regular expression"),
        ({"type": "regex", "pattern": "a" * 1001}, "pattern", "at most 1000 characters"),
        ({"type": "json_schema", "json_schema": {"type": "nonsense"}}, "json_schema", "invalid JSON Schema"),
        ({"type": "python", "code": "def reward(p, c, r)\n    return 1"}, "code", "syntax error at line 1"),
        (
            {"type": "python", "code": "def score(p, c, r):\n    return 1"},
            "code",
            "must define a top-level function",
        ),
        ({"type": "python", "code": "def reward(p, c):\n    return 1"}, "code", "must accept exactly"),
        ({"type": "python", "code": "async def reward(p, c, r):\n    return 1"}, "code", "not async"),
        ({"type": "length", "max_length": 100, "buffer": 200}, None, "must not exceed max_length"),
        ({"type": "length", "max_length": 100, "min_length": 90}, None, "min_length (90) must be <="),
        ({"type": "format", "tags": ["thi nk"]}, "tags", "String should match pattern"),
        ({"type": "http", "url": "ftp://x.example.com"}, "url", "URL scheme should be 'http' or 'https'"),
        ({"type": "exact_match", "fild": "answer"}, "fild", "Extra inputs are not permitted"),
        ({"type": "exact_match", "max_error_rate": 2}, "max_error_rate", "less than or equal to 1"),
        (
            {"type": "multi", "components": [{"type": "format", "weight": -1}]},
            None,
            "positive sub-reward weights",
        ),
        ({"type": "no_such_grader"}, None, "does not match any of the expected tags"),
    ],
)
def test_invalid_specs_name_the_field(spec: dict, field: str | None, message: str) -> None:
    loc, msg = error_of(spec)
    assert message in msg
    if field is not None:
        assert loc[-1] == field or field in loc


def test_python_signature_accepts_defaults_and_varargs() -> None:
    specs({"type": "python", "code": "def reward(p, c, r, extra=1):\n    return 1"})
    specs({"type": "python", "code": "def reward(*args):\n    return 1"})


def test_multi_nesting_is_limited() -> None:
    inner = {"type": "multi", "components": [{"type": "format"}]}
    for _ in range(3):
        inner = {"type": "multi", "components": [inner]}
    assert "nest at most 3 levels" in error_of(inner)[1]


def test_safeguard_defaults_and_bounds() -> None:
    spec = SafeguardSpec()
    assert spec.on_alert == "record" and spec.window == 10
    with pytest.raises(ValidationError, match="on_alert"):
        SafeguardSpec(on_alert="panic")  # type: ignore[arg-type]
