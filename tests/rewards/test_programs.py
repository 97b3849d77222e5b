"""Built-in sandbox programs: math equivalence (math-verify) and JSON Schema, in-process and sandboxed."""

import pytest

from tests.utils.rewards import SETTINGS, requires_root, specs
from workers.rewards import build_reward_fn
from workers.rewards.programs import json_schema, math_equivalence

MATH = {"extraction": "boxed_or_marker", "marker": "Answer:"}


@pytest.mark.parametrize(
    ("completion", "reference"),
    [
        (r"so the answer is \boxed{\frac{1}{2}}", "0.5"),
        (r"\boxed{0.5}", r"\frac{1}{2}"),
        (r"\boxed{2x+1}", "1+2x"),
        (r"\boxed{1+2x}", "2x+1"),
        ("Work... Answer: x^2 - 1", "(x-1)(x+1)"),
        (r"first \boxed{7}, no wait, \boxed{\sqrt{4}}", "2"),
        (r"\boxed{\frac{2}{4}} is it", "1/2"),
        ("answer: 12.", 12),
    ],
)
def test_math_equivalent_answers_pass(completion: str, reference: object) -> None:
    assert math_equivalence.score(completion, reference, MATH) == 1.0


@pytest.mark.parametrize(
    ("completion", "reference"),
    [
        (r"\boxed{\frac{1}{3}}", "0.5"),
        (r"\boxed{2x+2}", "2x+1"),
        (r"\boxed{2y+1}", "2x+1"),  # strict: variable names matter
        (r"\boxed{7} and later \boxed{3}", "7"),  # the last box counts
        ("I think it is 0.5", "0.5"),  # no box, no marker: no answer
        ("", "1"),
    ],
)
def test_math_wrong_or_missing_answers_fail(completion: str, reference: str) -> None:
    assert math_equivalence.score(completion, reference, MATH) == 0.0


def test_math_extraction_modes() -> None:
    assert math_equivalence.score("Answer: 5", "5", {"extraction": "boxed"}) == 0.0
    assert math_equivalence.score(r"\boxed{5}", "5", {"extraction": "marker", "marker": "####"}) == 0.0
    assert math_equivalence.score("so #### 5", "5", {"extraction": "marker", "marker": "####"}) == 1.0
    assert math_equivalence.score("the result is $5$", "5", {"extraction": "any"}) == 1.0
    assert math_equivalence.last_boxed(r"\boxed{x^{2}} then \boxed{\frac{a}{b}}") == r"\frac{a}{b}"
    assert math_equivalence.last_boxed(r"\boxed{unclosed") is None


def test_math_unparseable_reference_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a parseable answer"):
        math_equivalence.score(r"\boxed{1}", "", MATH)


SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ('{"answer": 3}', 1.0),
        ('Here you go:\n```json\n{"answer": 3}\n```', 1.0),
        ('{"answer": "three"}', 0.5),  # JSON, but not valid against the schema: parse_only_score
        ('{"answer": 3', 0.0),
        ("[" * 100000, 0.0),  # too deep for the parser: not JSON, not a crash
    ],
)
def test_json_schema(completion: str, expected: float) -> None:
    assert json_schema.score(completion, SCHEMA, {"parse_only_score": 0.5}) == expected


def test_json_schema_code_fence_can_be_refused() -> None:
    fenced = '```json\n{"answer": 3}\n```'
    assert json_schema.score(fenced, SCHEMA, {"allow_code_fence": False}) == 0.0


@requires_root
@pytest.mark.usefixtures("no_leaked_sandboxes")
def test_programs_run_sandboxed_through_the_scorer() -> None:
    reward_specs = specs(
        {"type": "math_equivalence", "max_error_rate": 1.0},
        {"type": "json_schema", "json_schema": SCHEMA, "allow_code_fence": True},
    )
    completions = [r"\boxed{\frac{1}{2}}", r"\boxed{0.4}", '{"answer": 1}', r"\boxed{2x+1}"]
    rows = [{"answer": "0.5"}, {"answer": "0.5"}, {}, {"answer": "1+2x"}]
    with build_reward_fn(reward_specs, sandbox=SETTINGS) as reward_fn:
        outcomes = reward_fn.outcomes([""] * 4, completions, rows)
        batch = reward_fn([""] * 4, completions, rows)
    math = outcomes["math_equivalence"]
    assert [o.value for o in math] == [1.0, 0.0, None, 1.0]
    assert math[2].error is not None and "row has no field 'answer'" in math[2].error
    assert batch.components["json_schema"] == [0.0, 0.0, 1.0, 0.0]
    assert batch.components["math_equivalence"] == [1.0, 0.0, 0.0, 1.0]  # the error scores error_score
    assert batch.metrics["reward/math_equivalence/errors"] == 1.0


@requires_root
@pytest.mark.usefixtures("no_leaked_sandboxes")
def test_math_timeout_is_an_error_not_a_hang() -> None:
    """9^(9^(9^9)) keeps sympy inside C big-integer code, where no signal gets through: only the
    pool's kill (timeout_s + grace) ends it. In a worker thread this would hang forever."""
    spec = specs({"type": "math_equivalence", "timeout_s": 0.5, "max_error_rate": 1.0})
    with build_reward_fn(spec, sandbox=SETTINGS) as reward_fn:
        outcomes = reward_fn.outcomes([""], [r"\boxed{9^{9^{9^{9}}}}"], [{"answer": "1"}])["math_equivalence"]
        fine = reward_fn.outcomes([""], [r"\boxed{1}"], [{"answer": "1"}])["math_equivalence"]
    assert outcomes[0].error == "timed out after 2.5 s"
    assert fine[0].value == 1.0
