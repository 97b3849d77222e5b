"""Inline graders, each with positive and negative cases."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.utils.rewards import specs
from workers.rewards.errors import RewardConfigError
from workers.rewards.graders import build_inline_grader
from workers.rewards.similarity import chrf, edit_ratio, levenshtein


def grade(spec: dict, completion: str, row: dict | None = None, **options: object) -> float | None:
    grader = build_inline_grader(specs(spec)[0], **options)  # type: ignore[arg-type]
    assert grader is not None
    return grader("prompt", completion, row or {})


def test_exact_match() -> None:
    assert grade({"type": "exact_match"}, " 42\n", {"answer": "42"}) == 1.0
    assert grade({"type": "exact_match"}, "42.0", {"answer": "42"}) == 0.0
    assert grade({"type": "exact_match", "case_sensitive": False}, "Paris", {"answer": "PARIS"}) == 1.0
    assert grade({"type": "exact_match"}, "Paris", {"answer": "PARIS"}) == 0.0
    with pytest.raises(KeyError, match="row has no field 'answer'"):
        grade({"type": "exact_match"}, "x", {"solution": "x"})


@pytest.mark.parametrize(
    ("operation", "completion", "expected"),
    [
        ("eq", "cat", 1.0),
        ("eq", "cats", 0.0),
        ("ne", "dog", 1.0),
        ("ne", "cat", 0.0),
        ("contains", "the cat sat", 1.0),
        ("contains", "the dog sat", 0.0),
        ("not_contains", "the dog sat", 1.0),
        ("not_contains", "a cat", 0.0),
        ("starts_with", "cat food", 1.0),
        ("starts_with", "a cat", 0.0),
        ("ends_with", "my cat", 1.0),
        ("ends_with", "cat food", 0.0),
    ],
)
def test_string_check_operations(operation: str, completion: str, expected: float) -> None:
    assert grade({"type": "string_check", "operation": operation}, completion, {"answer": "cat"}) == expected


def test_string_check_literal_value_and_case() -> None:
    spec = {"type": "string_check", "operation": "contains", "value": "DONE", "case_sensitive": False}
    assert grade(spec, "all done.", {}) == 1.0
    assert grade({**spec, "case_sensitive": True}, "all done.", {}) == 0.0


def test_numeric_match() -> None:
    spec = {"type": "numeric_match", "tolerance": 0.01}
    assert grade(spec, "so the total is 1,234.001", {"answer": "1234"}) == 1.0
    assert grade(spec, "it is 12 or maybe 13", {"answer": 12}) == 0.0  # the last number counts
    assert grade(spec, "no number here", {"answer": "3"}) == 0.0
    with pytest.raises(ValueError, match="holds no number"):
        grade(spec, "3", {"answer": "three"})


def test_regex_modes() -> None:
    assert grade({"type": "regex", "pattern": r"\d{3}"}, "code 123 ok") == 1.0
    assert grade({"type": "regex", "pattern": r"\d{3}"}, "code 12 ok") == 0.0
    assert grade({"type": "regex", "pattern": r"\d+", "mode": "fullmatch"}, "123") == 1.0
    assert grade({"type": "regex", "pattern": r"\d+", "mode": "fullmatch"}, "123a") == 0.0
    assert grade({"type": "regex", "pattern": "ab", "mode": "count", "max_count": 4}, "ab ab x ab") == 0.75
    assert grade({"type": "regex", "pattern": "ab", "mode": "count", "max_count": 2}, "ab ab ab") == 1.0
    assert grade({"type": "regex", "pattern": "sorry", "negate": True}, "Sorry!") == 1.0
    assert grade({"type": "regex", "pattern": "sorry", "negate": True, "ignore_case": True}, "Sorry!") == 0.0
    assert grade({"type": "regex", "pattern": "^b", "multiline": True}, "a\nb") == 1.0
    assert grade({"type": "regex", "pattern": "a.b", "dotall": True}, "a\nb") == 1.0


def test_regex_catastrophic_backtracking_times_out() -> None:
    with pytest.raises(TimeoutError):
        grade({"type": "regex", "pattern": r"(x+x+)+y", "timeout_s": 0.2}, "x" * 5000)
    with pytest.raises(TimeoutError):
        grade(
            {"type": "regex", "pattern": r"(x+x+)+y|z", "mode": "count", "max_count": 5, "timeout_s": 0.2},
            "x" * 5000,
        )


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>reasoning</think><answer>42</answer>", 1.0),
        ("  <think>a\nb</think>\n<answer>42</answer>\n", 1.0),
        ("<answer>42</answer><think>reasoning</think>", 0.0),  # wrong order
        ("<think>reasoning</think>", 0.0),  # missing block
        ("<think>r</think><answer>1</answer><answer>2</answer>", 0.0),  # duplicated
        ("Sure! <think>r</think><answer>42</answer>", 0.0),  # text outside the blocks
        ("<think> </think><answer>42</answer>", 0.0),  # empty block
        ("<think>r<answer>42</think></answer>", 0.0),  # interleaved
    ],
)
def test_format_strict(completion: str, expected: float) -> None:
    assert grade({"type": "format"}, completion) == expected


def test_format_lenient_and_custom_tags() -> None:
    assert grade({"type": "format", "strict": False}, "Sure! <think>r</think> then <answer>42</answer>.") == 1.0
    spec = {"type": "format", "tags": ["reasoning", "final"], "require_content": False}
    assert grade(spec, "<reasoning></reasoning><final>x</final>") == 1.0
    assert grade(spec, "<think>r</think><answer>x</answer>") == 0.0


@pytest.mark.parametrize(
    ("length", "expected"),
    [(0, -1.0), (9, -1.0), (10, 0.0), (80, 0.0), (85, -0.25), (100, -1.0), (101, -1.0)],
)
def test_length_window_and_soft_overlong_penalty(length: int, expected: float) -> None:
    spec = {"type": "length", "max_length": 100, "buffer": 20, "min_length": 10}
    assert grade(spec, "x" * length) == pytest.approx(expected)


def test_length_in_tokens_needs_a_counter() -> None:
    spec = {"type": "length", "unit": "tokens", "max_length": 10, "buffer": 5}
    with pytest.raises(RewardConfigError, match="needs the model's tokenizer"):
        grade(spec, "a b c")
    assert grade(spec, "w " * 8, count_tokens=lambda text: len(text.split())) == pytest.approx(-0.6)


def test_text_similarity() -> None:
    spec = {"type": "text_similarity"}
    assert grade(spec, "The cat sat on the mat", {"answer": "The cat sat on the mat"}) == 1.0
    assert grade(spec, "qqq", {"answer": "The cat sat on the mat"}) == 0.0
    close = grade(spec, "The cat sat on a mat", {"answer": "The cat sat on the mat"})
    far = grade(spec, "A dog ran in the park", {"answer": "The cat sat on the mat"})
    assert close is not None and far is not None and 0.5 < close < 1.0 and far < close
    assert grade({"type": "text_similarity", "metric": "edit_ratio"}, "kitten", {"answer": "sitting"}) == pytest.approx(
        1 - 3 / 7
    )


def test_chrf_known_values() -> None:
    assert chrf("", "") == 1.0 and chrf("abc", "") == 0.0
    # unigrams: 2 of 3 match both ways; bigrams: 'ab' of 2; P = R = (2/3 + 1/2) / 2
    assert chrf("abc", "abd", char_order=2) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert chrf("a b c", "abc") == 1.0  # whitespace is ignored


def _dp_levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
        previous = current
    return previous[-1]


@given(st.text(alphabet="abc\u00e9", max_size=40), st.text(alphabet="abc\u00e9", max_size=40))
def test_bit_parallel_levenshtein_matches_the_textbook_dp(a: str, b: str) -> None:
    assert levenshtein(a, b) == _dp_levenshtein(a, b)
    assert 0.0 <= edit_ratio(a, b) <= 1.0
