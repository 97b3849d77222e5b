"""Issue 17, defects 1 and 3: tied groups are decided exactly (one group of 8 x 0.7 is tied although its
float32 std is ~6e-8), and unscorable completions (NaN / inf reward) are left out of their group's
baseline with advantage 0, never turning the gradients NaN, and counted in reward/unscorable_frac."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from workers.engine import RewardBatch, train
from workers.engine.loss import group_advantages, tied_groups

from .conftest import RecordingSink, digit_rows, make_config


def constant_reward(_p: list[str], completions: list[str], _rows: list[dict[str, Any]]) -> RewardBatch:
    total = [0.7] * len(completions)  # 0.7 is not exactly representable: float32 std of 8 copies != 0
    return RewardBatch(total=total, components={"c": total})


def test_one_group_of_inexact_ties_is_tied():
    rewards = torch.full((8,), 0.7)
    assert float(rewards.view(-1, 8).std(dim=1)) > 0  # the old test's blind spot, still true in torch
    assert tied_groups(rewards, 8).tolist() == [True]
    assert tied_groups(torch.tensor([0.7] * 7 + [0.70001]), 8).tolist() == [False]
    assert tied_groups(torch.tensor([0.7, 0.7, math.nan, 0.7]), 4).tolist() == [True]  # scorable ones tie
    assert tied_groups(torch.tensor([0.1, math.nan, math.nan, math.nan]), 4).tolist() == [True]


def test_dynamic_sampling_drops_a_lone_tied_group(tmp_path, model_cache):
    config = make_config(
        model_cache, group_size=8, prompts_per_step=1, max_steps=1, max_new_tokens=2,
        dynamic_sampling=True, max_resample_rounds=2,
    )  # fmt: skip
    sink = RecordingSink()
    train(config, digit_rows(), constant_reward, sink, work_dir=tmp_path)
    metrics = sink.steps[0].metrics
    assert metrics["dynamic_sampling/dropped_groups"] == 3.0  # every round's only group tied
    assert metrics["dynamic_sampling/rounds"] == 3.0
    assert metrics["reward/frac_zero_std"] == 1.0


def test_advantages_leave_unscorable_completions_out():
    nan, inf = math.nan, math.inf
    rewards = torch.tensor([1.0, nan, 0.0, 0.5, inf, 2.0, 2.0, -inf])
    advantages, _ = group_advantages(rewards, 4, "group", 1e-4)
    assert advantages[[1, 4, 7]].tolist() == [0.0, 0.0, 0.0]
    first, _ = group_advantages(torch.tensor([1.0, 0.0, 0.5]), 3, "group", 1e-4)
    second, _ = group_advantages(torch.tensor([2.0, 2.0]), 2, "group", 1e-4)
    assert torch.equal(advantages[[0, 2, 3]], first)  # the baseline of the scorable ones only
    assert torch.equal(advantages[[5, 6]], second)
    batch, _ = group_advantages(rewards, 4, "batch", 1e-4)
    assert torch.isfinite(batch).all() and batch[[1, 4, 7]].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_unscorable_completions_train_without_nan(tmp_path, model_cache, beta):
    def sometimes_nan(_p: list[str], completions: list[str], _rows: list[dict[str, Any]]) -> RewardBatch:
        total = [math.nan if i % 3 == 0 else float(i % 4) for i in range(len(completions))]
        total[1] = math.inf
        return RewardBatch(total=total, components={"c": total})

    config = make_config(model_cache, max_steps=2, beta=beta, log_samples_per_step=12)
    sink = RecordingSink()
    result = train(config, digit_rows(), sometimes_nan, sink, work_dir=tmp_path)
    for report in sink.steps:
        assert all(math.isfinite(v) for v in report.metrics.values()), report.metrics
        assert report.metrics["reward/unscorable_frac"] == 5 / 12
        assert all(math.isfinite(s.reward) for s in report.samples) and len(report.samples) == 7
    assert result.steps_completed == 2
