"""pass@k is the unbiased estimator: the chance that k of the n samples, drawn without replacement, hold a
correct one; checked against enumerating every k-subset."""

import itertools

import pytest
import torch

from workers.engine.evaluation import eval_metrics, pass_at_k


def enumerated(n: int, correct: int, k: int) -> float:
    outcomes = [True] * correct + [False] * (n - correct)
    subsets = list(itertools.combinations(outcomes, k))
    return sum(any(subset) for subset in subsets) / len(subsets)


CASES = [(n, c, k) for n in (1, 4, 7) for c in range(n + 1) for k in (1, 2, 4) if k <= n]


@pytest.mark.parametrize(("n", "correct", "k"), CASES)
def test_matches_enumeration(n, correct, k):
    assert pass_at_k(n, correct, k) == pytest.approx(enumerated(n, correct, k), abs=1e-12)


def test_known_values_and_not_the_biased_plug_in():
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the accuracy
    # The plug-in 1 - (1 - c/n)^k (sampling with replacement) is biased low: 1 - 0.75^2 = 0.4375 here.
    assert pass_at_k(4, 1, 2) != pytest.approx(1 - (1 - 1 / 4) ** 2)


def test_eval_metrics_average_pass_at_k_over_prompts():
    # Two prompts, four samples each: 1 and 0 correct (threshold 1.0).
    totals = [1.0, 0.0, 0.0, 0.0] + [0.0, 0.5, 0.0, 0.0]
    metrics = eval_metrics(totals, {"hit": totals}, torch.ones(8), torch.zeros(8), n=4, threshold=1.0)
    assert metrics["eval/accuracy"] == pytest.approx(1 / 8)
    assert metrics["eval/pass@1"] == pytest.approx((0.25 + 0.0) / 2)
    assert metrics["eval/pass@2"] == pytest.approx((0.5 + 0.0) / 2)
    assert metrics["eval/pass@4"] == pytest.approx((1.0 + 0.0) / 2)
    assert metrics["eval/hit/mean"] == pytest.approx(1.5 / 8) and "eval/pass@8" not in metrics
