"""Huge and non-finite rewards are the reward's errors (per its error policy), and an unscorable
completion reaches the engine as NaN, never as a made-up 0.0 (issues 14 and 17)."""

import math

import pytest

from tests.rewards.conftest import requires_root, specs
from workers.rewards import RewardError, build_reward_fn
from workers.rewards.scorer import MAX_ABS_REWARD

RETURNS = "def reward(p, c, r):\n    return float(c)\n"  # the completion is the score


@requires_root
@pytest.mark.parametrize("value", ["1e308", "-1e308", "inf", "nan", str(MAX_ABS_REWARD * 2)])
def test_a_python_reward_out_of_range_is_an_error_of_that_call(value: str) -> None:
    spec = specs({"type": "python", "code": RETURNS, "max_error_rate": 1.0, "error_score": -1.0})
    with build_reward_fn(spec) as reward_fn:
        batch = reward_fn(["q", "q"], [value, "0.5"], [{}, {}])
    assert batch.total == [-1.0, 0.5]  # on_error='score': the error_score, never 1e308
    assert batch.metrics["reward/python/errors"] == 1.0
    assert all(math.isfinite(v) for v in batch.metrics.values() if not math.isnan(v))


@requires_root
def test_out_of_range_rewards_count_against_max_error_rate() -> None:
    spec = specs({"type": "python", "code": RETURNS, "max_error_rate": 0.4})
    with build_reward_fn(spec) as reward_fn, pytest.raises(RewardError, match=r"outside the accepted range"):
        reward_fn(["q"] * 2, ["1e308", "1"], [{}, {}])


def test_an_unscorable_completion_is_nan_not_zero() -> None:
    # The second row lacks the field: with on_error='skip' no component has a value for it.
    spec = specs({"type": "exact_match", "on_error": "skip", "max_error_rate": 1.0}, {"type": "format", "weight": 0.0})
    # format with weight 0 still has a value (0.0 * score): only a component without a value is left out
    only_skip = specs({"type": "exact_match", "on_error": "skip", "max_error_rate": 1.0})
    batch = build_reward_fn(only_skip)(["q", "q"], ["a", "a"], [{"answer": "a"}, {}])
    assert batch.total[0] == 1.0 and math.isnan(batch.total[1])
    with_other = build_reward_fn(spec)(["q", "q"], ["a", "a"], [{"answer": "a"}, {}])
    assert with_other.total == [1.0, 0.0]  # another component scored it: a real total
