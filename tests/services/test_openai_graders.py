"""OpenAI grader semantics, case by case against OpenAI's documented behaviour (docs/openai-fine-tuning.md):
the runtime the sandbox runs, called directly (no sandbox, no API), so each case takes microseconds."""

import math

import pytest

from app.core.errors import ProblemError
from app.services import openai_grader_runtime as rt
from app.services.openai_graders import check_grader, to_native

SAMPLE = rt.make_sample("The answer is Paris.")


def no_python(*_: object) -> float:
    raise AssertionError("no python grader here")


def check(operation: str, text: str, reference: str) -> float:
    grader = {"type": "string_check", "name": "s", "operation": operation, "input": text, "reference": reference}
    return rt.grade(grader, SAMPLE, {}, no_python)


@pytest.mark.parametrize(
    ("case", "operation", "text", "reference", "expected"),
    [
        ("eq: identical strings pass", "eq", "Paris", "Paris", 1.0),
        ("eq: case-sensitive", "eq", "paris", "Paris", 0.0),
        ("eq: whitespace is not stripped", "eq", "Paris ", "Paris", 0.0),
        ("ne: different strings pass", "ne", "Rome", "Paris", 1.0),
        ("ne: identical strings fail", "ne", "Paris", "Paris", 0.0),
        ("like: the reference is a substring of the input", "like", "The answer is Paris.", "Paris", 1.0),
        ("like: case-sensitive", "like", "the answer is paris.", "Paris", 0.0),
        ("like: the input inside the reference does not count", "like", "Par", "Paris", 0.0),
        ("ilike: case-insensitive substring", "ilike", "THE ANSWER IS PARIS.", "paris", 1.0),
        ("ilike: absent ignoring case", "ilike", "Rome", "paris", 0.0),
    ],
)
def test_string_check(case: str, operation: str, text: str, reference: str, expected: float) -> None:
    assert check(operation, text, reference) == expected, case


@pytest.mark.parametrize(
    ("case", "metric", "text", "reference", "expected"),
    [
        ("fuzzy_match: identical is 1", "fuzzy_match", "kitten", "kitten", 1.0),
        ("fuzzy_match: rapidfuzz fuzz.ratio('kitten', 'sitting') = 61.54", "fuzzy_match", "kitten", "sitting", 8 / 13),
        ("fuzzy_match: case-sensitive, as fuzz.ratio", "fuzzy_match", "ABC", "abc", 0.0),
        ("fuzzy_match: disjoint is 0", "fuzzy_match", "abc", "xyz", 0.0),
        ("bleu: identical 4+ words is 1", "bleu", "the cat sat on the mat", "the cat sat on the mat", 1.0),
        ("bleu: no shared word: only the smoothing", "bleu", "a b c d", "w x y z", (0.1**4 / 24) ** 0.25),
        ("gleu: identical is 1", "gleu", "the cat sat on the mat", "the cat sat on the mat", 1.0),
        ("gleu: min(precision, recall) of 1-4 grams", "gleu", "the cat", "the cat sat", 3 / 6),
        ("meteor: identical (one chunk) is F * (1 - 0.5 / m^3)", "meteor", "a b c", "a b c", 1 - 0.5 / 27),
        ("rouge_1: unigram F1", "rouge_1", "the cat sat", "the cat ran", 2 / 3),
        ("rouge_2: bigram F1", "rouge_2", "the cat sat", "the cat ran", 1 / 2),
        ("rouge_1: rouge_score tokens (lower-case, punctuation dropped)", "rouge_1", "The CAT!", "the cat", 1.0),
        ("rouge_l: LCS F1", "rouge_l", "a b c d", "a c d e", 3 / 4),
        ("rouge_5: fewer than 5 tokens is 0", "rouge_5", "a b c", "a b c", 0.0),
    ],
)
def test_text_similarity(case: str, metric: str, text: str, reference: str, expected: float) -> None:
    grader = {
        "type": "text_similarity",
        "name": "t",
        "evaluation_metric": metric,
        "input": text,
        "reference": reference,
    }
    assert rt.grade(grader, SAMPLE, {}, no_python) == pytest.approx(expected, abs=1e-3), case


def test_bleu_brevity_penalty_and_partial_overlap() -> None:
    # 4 of 4 unigrams, 3/3 bigrams, 2/2 trigrams, 1/1 4-gram match, but the hypothesis is half as long.
    assert rt.bleu("a b c d", "a b c d e f g h") == pytest.approx(math.exp(1 - 2), abs=1e-9)


@pytest.mark.parametrize(
    ("case", "template", "item", "expected"),
    [
        ("item field", "{{ item.answer }}", {"answer": "4"}, "4"),
        ("nested item field and list index", "{{item.ref.names.1}}", {"ref": {"names": ["a", "b"]}}, "b"),
        ("non-string values render as JSON", "{{ item.n }}", {"n": 3}, "3"),
        ("sample.output_text", "[{{ sample.output_text }}]", {}, '[{"city": "Paris"}]'),
        ("sample.output_json path", "{{ sample.output_json.city }}", {}, "Paris"),
    ],
)
def test_templates(case: str, template: str, item: dict, expected: str) -> None:
    assert rt.render(template, rt.make_sample('{"city": "Paris"}'), item) == expected, case


def test_missing_template_variable_is_an_error_naming_it() -> None:
    with pytest.raises(rt.GraderError, match="item.answer not found"):
        rt.render("{{ item.answer }}", SAMPLE, {})
    with pytest.raises(rt.GraderError, match="sample has"):
        rt.check_template("{{ sample.text }}")
    with pytest.raises(rt.GraderError, match="use"):
        rt.check_template("{{ answer }}")


@pytest.mark.parametrize(
    ("case", "formula", "expected"),
    [
        ("weighted sum", "0.3 * a + 0.7 * b", 0.3 * 1.0 + 0.7 * 0.5),
        ("^ is a power, as OpenAI writes it", "b ^ 2", 0.25),
        ("functions", "min(a, b) + max(a, b) + abs(-a) + floor(1.5) + ceil(0.5) + sqrt(4) + exp(0) + log(1)", 7.5),
        ("unary minus and parentheses", "-(a - b) * 2", -1.0),
    ],
)
def test_formula(case: str, formula: str, expected: float) -> None:
    assert rt.evaluate_formula(formula, {"a": 1.0, "b": 0.5}) == pytest.approx(expected), case


@pytest.mark.parametrize(
    ("case", "formula"),
    [
        ("attribute access", "a.__class__"),
        ("calls to anything else", "__import__('os').system('true')"),
        ("subscripts", "a[0]"),
        ("lambdas", "(lambda: 1)()"),
        ("comparisons", "a > b"),
        ("strings", "'x'"),
        ("keyword arguments", "max(a, b=1)"),
        ("statements", "a = 1"),
    ],
)
def test_formula_rejects_everything_but_arithmetic(case: str, formula: str) -> None:
    with pytest.raises(rt.GraderError):
        rt.parse_formula(formula)
        pytest.fail(case)


def test_formula_runtime_errors_are_grader_errors() -> None:
    with pytest.raises(rt.GraderError, match="division"):
        rt.evaluate_formula("a / (b - b)", {"a": 1.0, "b": 0.5})
    with pytest.raises(rt.GraderError, match="unknown name"):
        rt.evaluate_formula("c", {"a": 1.0})
    with pytest.raises(rt.GraderError, match="finite"):
        rt.evaluate_formula("1e308 * 10 - 1e308 * 10", {})


def test_multi_combines_sub_graders_by_name() -> None:
    grader = {
        "type": "multi",
        "name": "m",
        "graders": {
            "exact": {"type": "string_check", "name": "e", "operation": "eq", "input": "{{ sample.output_text }}",
                      "reference": "{{ item.answer }}"},
            "code": {"type": "python", "name": "c", "source": "..."},
        },
        "calculate_output": "0.5 * exact + 0.5 * code",
    }  # fmt: skip
    assert rt.grade(grader, rt.make_sample("4"), {"answer": "4"}, lambda *_: 0.2) == pytest.approx(0.6)


def test_translation_checks_and_native_spec() -> None:
    source = "def grade(sample, item):\n    return 1.0\n"
    native = to_native({"type": "python", "name": "my grader!", "source": source})
    assert native["type"] == "python" and native["name"] == "my_grader_"
    assert "def reward(prompt, completion, row)" in native["code"] and "def grade(sample, item):" in native["code"]
    bad = [
        ({"type": "python", "name": "p", "source": "def other(): pass"}, "grader.source"),
        ({"type": "python", "name": "p", "source": "def grade(sample): pass"}, "grader.source"),
        ({"type": "multi", "name": "m", "calculate_output": "a + b",
          "graders": {"a": {"type": "python", "name": "p", "source": source}}}, "grader.calculate_output"),
        ({"type": "text_similarity", "name": "t", "evaluation_metric": "cosine", "input": "", "reference": ""},
         "grader.evaluation_metric"),
    ]  # fmt: skip
    for grader, param in bad:
        with pytest.raises(ProblemError) as caught:
            check_grader(grader)
        assert caught.value.errors[0].field == param
