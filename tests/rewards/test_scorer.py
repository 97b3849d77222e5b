"""The scorer: totals, multi formulas, error policy and threshold, metrics, detectors, test endpoint."""

import math
import re
import threading

import pytest

from app.schemas.reward import RewardSample
from tests.utils.rewards import SETTINGS, Verifier, requires_root, specs
from workers.engine.interface import RewardBatch
from workers.rewards import RewardError, build_reward_fn, score_samples, validate_python_reward
from workers.rewards.errors import RewardConfigError, RewardValidationError


def test_weighted_total_and_default_names() -> None:
    reward_fn = build_reward_fn(
        specs(
            {"type": "exact_match"},
            {"type": "numeric_match", "weight": 0.5},
            {"type": "numeric_match", "name": "n2"},
        )
    )
    batch = reward_fn(["q", "q"], ["4", "five"], [{"answer": "4"}, {"answer": "5"}])
    assert isinstance(batch, RewardBatch)
    assert list(batch.components) == ["exact_match", "numeric_match_1", "n2"]  # the type repeats
    assert batch.components["numeric_match_1"] == [1.0, 0.0]
    assert batch.total == [1.0 + 0.5 + 1.0, 0.0]
    repeated = build_reward_fn(specs({"type": "format"}, {"type": "format", "tags": ["a"]}))
    assert [leaf.name for leaf in repeated.leaves] == ["format_0", "format_1"]


MULTI_PARTS = [
    {"type": "format", "weight": 1.0},  # 1.0 for the completion below
    {"type": "exact_match", "weight": 3.0},  # 0.0
    {"type": "regex", "pattern": "42", "weight": 2.0},  # 1.0
]


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [("weighted_sum", 3.0), ("weighted_mean", 3.0 / 6.0), ("min", 0.0), ("max", 1.0)],
)
def test_multi_formulas(aggregate: str, expected: float) -> None:
    spec = specs({"type": "multi", "name": "combo", "weight": 2.0, "components": MULTI_PARTS, "aggregate": aggregate})
    completion = "<think>t</think><answer>42</answer>"
    batch = build_reward_fn(spec)(["q"], [completion], [{"answer": "7"}])
    assert batch.components == {"combo": [pytest.approx(expected)]}
    assert batch.total == [pytest.approx(2.0 * expected)]
    assert batch.metrics["reward/combo/exact_match/mean"] == 0.0
    assert batch.metrics["reward/combo/regex/latency_p50_s"] >= 0.0


def test_error_policy_score_and_skip() -> None:
    rows = [{"answer": "a"}, {}]  # the second row lacks the field: an error, not a 0
    scored = build_reward_fn(
        specs(
            {"type": "exact_match", "error_score": -1.0, "max_error_rate": 1.0},
            {"type": "format", "weight": 0.0},
        )
    )(["", ""], ["a", "a"], rows)
    assert scored.components["exact_match"] == [1.0, -1.0] and scored.total == [1.0, -1.0]
    skipped = build_reward_fn(
        specs(
            {"type": "exact_match", "on_error": "skip", "max_error_rate": 1.0},
            {"type": "string_check", "value": "a"},
        )
    )(["", ""], ["a", "a"], rows)
    assert skipped.components["exact_match"][0] == 1.0 and math.isnan(skipped.components["exact_match"][1])
    assert skipped.total == [2.0, 1.0]
    assert skipped.metrics["reward/exact_match/errors"] == 1.0
    assert skipped.metrics["reward/exact_match/error_rate"] == 0.5


def test_error_rate_threshold_raises_reward_error() -> None:
    spec = specs({"type": "exact_match", "name": "answer_check", "max_error_rate": 0.2})
    rows = [{"answer": "x"}] * 6 + [{}] * 2
    with pytest.raises(RewardError) as info:
        build_reward_fn(spec)([""] * 8, ["x"] * 8, rows)
    error = info.value
    assert (error.reward, error.errors, error.total, error.code) == ("answer_check", 2, 8, "reward_error")
    assert str(error).startswith("reward 'answer_check' failed on 2 of 8 completions (25% > max_error_rate 20%)")
    assert "row has no field 'answer'" in error.samples[0]
    build_reward_fn(spec)([""] * 8, ["x"] * 8, [{"answer": "x"}] * 7 + [{}])  # 12.5%: below the threshold


def test_step_metrics_and_hacking_detectors() -> None:
    completions = ["the cat the cat the cat the cat"] * 4 + ["a", "bb b", "ccc c c", "dddd"]
    rows = [{"answer": c} for c in completions[:4]] + [{"answer": "zz"}] * 4
    reward_fn = build_reward_fn(specs({"type": "exact_match"}, {"type": "regex", "pattern": "b"}), group_size=4)
    metrics = reward_fn([""] * 8, completions, rows).metrics
    for name in ("exact_match", "regex"):
        assert {f"reward/{name}/{key}" for key in ("latency_p50_s", "latency_p95_s", "errors", "error_rate")} <= set(
            metrics
        )
    assert metrics["hacking/identical_in_group_frac"] == 0.5  # group 1 all identical, group 2 all distinct
    assert metrics["hacking/zero_std_group_frac"] == 0.5  # group 1 all score 1.0; group 2 has one regex hit
    assert metrics["hacking/repetition_max"] == pytest.approx(1 - 2 / 6)  # 2 distinct of 6 word 3-grams
    assert metrics["hacking/completion_chars_max"] == 31.0
    assert metrics["time/scoring_s"] > 0.0
    ungrouped = build_reward_fn(specs({"type": "exact_match"}), group_size=3)([""] * 8, completions, rows).metrics
    assert "hacking/identical_in_group_frac" not in ungrouped  # 8 completions are not groups of 3


def test_slow_components_are_scored_concurrently() -> None:
    server = Verifier()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        common = {"type": "http", "url": server.url("/paced"), "max_concurrency": 1, "batch_size": 1}
        reward_fn = build_reward_fn(specs({**common, "name": "a"}, {**common, "name": "b"}), http_allow_private=True)
        with reward_fn:
            batch = reward_fn([""] * 4, ["x"] * 4, [{}] * 4)
    finally:
        server.shutdown()
        server.server_close()
    assert batch.components == {"a": [0.1] * 4, "b": [0.1] * 4}
    assert server.max_in_flight == 2  # one request of each component at once; each capped at 1


def test_score_samples_reports_errors_without_raising() -> None:
    reward_specs = specs(
        {"type": "exact_match", "max_error_rate": 0.0},
        {"type": "multi", "name": "m", "components": [{"type": "format"}, {"type": "numeric_match"}]},
    )
    samples = [
        RewardSample(completion="<think>a</think><answer>3</answer>", row={"answer": "3"}),
        RewardSample(completion="3", row={}),
    ]
    first, second = score_samples(reward_specs, samples)
    assert first.components == {"exact_match": 0.0, "m/format": 1.0, "m/numeric_match": 1.0, "m": 1.0}
    assert first.total == 1.0 and first.errors == {}
    assert second.errors.keys() == {"exact_match", "m/numeric_match"}
    assert "row has no field 'answer'" in second.errors["exact_match"]
    assert second.components["m"] == 0.0  # format 0.0 and numeric_match's error_score 0.0


def test_length_in_tokens_without_a_tokenizer_fails_at_build() -> None:
    with pytest.raises(RewardConfigError, match="needs the model's tokenizer"):
        build_reward_fn(specs({"type": "length", "unit": "tokens", "max_length": 50}))
    reward_fn = build_reward_fn(
        specs({"type": "length", "unit": "tokens", "max_length": 4, "buffer": 2}),
        count_tokens=lambda s: len(s.split()),
    )
    assert reward_fn([""] * 2, ["a b", "a b c"], [{}, {}]).components["length"] == [0.0, -0.5]


@requires_root
@pytest.mark.usefixtures("no_leaked_sandboxes")
def test_python_none_is_not_applicable() -> None:
    code = "def reward(prompt, completion, row):\n    return None if completion == 'skip' else 1.0\n"
    spec = specs({"type": "python", "code": code, "weight": 2.0}, {"type": "string_check", "value": "skip"})
    with build_reward_fn(spec, sandbox=SETTINGS) as reward_fn:
        batch = reward_fn(["", ""], ["skip", "go"], [{"answer": "skip"}, {"answer": "x"}])
    assert math.isnan(batch.components["python"][0]) and batch.components["python"][1] == 1.0
    assert batch.total == [1.0, 2.0]
    assert batch.metrics["reward/python/not_applicable"] == 1.0 and batch.metrics["reward/python/errors"] == 0.0


@requires_root
@pytest.mark.usefixtures("no_leaked_sandboxes")
def test_validate_python_reward() -> None:
    sample = RewardSample(prompt="2+2?", completion="4", row={"answer": "4"})
    good = "def reward(prompt, completion, row):\n    return float(completion.strip() == row['answer'])\n"
    assert validate_python_reward(good, sample, settings=SETTINGS) == 1.0
    assert validate_python_reward(good, settings=SETTINGS) is None  # loads; no dry run without a sample
    cases = [
        ("def reward(prompt, completion, row)\n    return 1.0\n", "syntax error at line 1"),
        ("def reward(prompt):\n    return 1.0\n", "must accept exactly"),
        (
            "import not_installed_pkg\ndef reward(p, c, r):\n    return 1.0\n",
            "failed to load: ModuleNotFoundError",
        ),
        (
            "def reward(p, c, r):\n    return r['missing']\n",
            "dry run failed in 'python': KeyError: 'missing' (line 2)",
        ),
        ("def reward(p, c, r):\n    return 'yes'\n", "reward returned str"),
    ]
    for code, message in cases:
        with pytest.raises(RewardValidationError, match=re.escape(message)) as info:
            validate_python_reward(code, sample, settings=SETTINGS)
        assert info.value.param == "code"
