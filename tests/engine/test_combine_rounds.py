"""Dynamic sampling scores a step in several rounds; the step's scorer metrics combine them by kind."""

import pytest

from workers.engine.collect import combine_rounds


def test_counts_add_maxima_max_and_rates_weigh_by_completions():
    first = {
        "reward/judge/errors": 2.0,
        "reward/judge/error_rate": 2 / 8,
        "reward/judge/latency_p50_s": 0.010,
        "hacking/completion_chars_max": 40.0,
        "hacking/identical_in_group_frac": 0.5,
        "time/scoring_s": 0.3,
    }
    second = {
        "reward/judge/errors": 0.0,
        "reward/judge/error_rate": 0.0,
        "reward/judge/latency_p50_s": 0.040,
        "hacking/completion_chars_max": 25.0,
        "hacking/identical_in_group_frac": 0.0,
        "time/scoring_s": 0.1,
    }
    combined = combine_rounds([(first, 8), (second, 24)])
    assert combined["reward/judge/errors"] == 2.0
    assert combined["reward/judge/error_rate"] == pytest.approx(2 / 32)  # errors / all completions scored
    assert combined["reward/judge/latency_p50_s"] == pytest.approx((0.010 * 8 + 0.040 * 24) / 32)
    assert combined["hacking/completion_chars_max"] == 40.0
    assert combined["hacking/identical_in_group_frac"] == pytest.approx(0.5 * 8 / 32)
    assert combined["time/scoring_s"] == pytest.approx(0.4)


def test_a_single_round_is_passed_through():
    metrics = {"reward/judge/latency_p95_s": 0.2, "reward/judge/errors": 1.0}
    assert combine_rounds([(metrics, 16)]) == metrics
