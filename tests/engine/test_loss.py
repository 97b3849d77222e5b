"""Hand-computed advantages and losses."""

import math

import pytest
import torch

from workers.engine.loss import (
    LossSettings,
    StepTotals,
    aggregate,
    group_advantages,
    masked_mean,
    per_token_loss,
)


def test_group_advantages_by_hand():
    rewards = torch.tensor([1.0, 0, 0, 0, 1, 1, 0, 0])
    advantages, std = group_advantages(rewards, 4, "group", 1e-4)
    # group 1: mean 0.25, unbiased std 0.5; group 2: mean 0.5, std sqrt(1/3)
    s2 = math.sqrt(1 / 3)
    expected = [
        0.75 / 0.5001,
        -0.25 / 0.5001,
        -0.25 / 0.5001,
        -0.25 / 0.5001,
        0.5 / (s2 + 1e-4),
        0.5 / (s2 + 1e-4),
        -0.5 / (s2 + 1e-4),
        -0.5 / (s2 + 1e-4),
    ]
    torch.testing.assert_close(advantages, torch.tensor(expected))
    torch.testing.assert_close(std, torch.tensor([0.5] * 4 + [s2] * 4))


def test_batch_and_none_scaling_by_hand():
    rewards = torch.tensor([1.0, 0, 0, 0, 1, 1, 0, 0])
    centred = torch.tensor([0.75, -0.25, -0.25, -0.25, 0.5, 0.5, -0.5, -0.5])
    none, _ = group_advantages(rewards, 4, "none", 1e-4)
    torch.testing.assert_close(none, centred)
    batch, _ = group_advantages(rewards, 4, "batch", 1e-4)
    batch_std = math.sqrt((3 * 0.625**2 + 5 * 0.375**2) / 7)  # over all 8, Bessel-corrected
    torch.testing.assert_close(batch, centred / (batch_std + 1e-4))


def test_tied_group_gets_zero_advantage():
    advantages, _ = group_advantages(torch.tensor([0.7, 0.7, 0.7, 1.0, 0.0, 0.5]), 3, "group", 1e-4)
    assert advantages[:3].tolist() == [0.0, 0.0, 0.0]
    assert advantages[3:].abs().sum() > 0


MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
ADV = torch.tensor([1.0, -3.0])


@pytest.mark.parametrize(
    ("loss_type", "expected"),
    [("dapo", 1 / 3), ("bnpo", 1 / 3), ("grpo", (-1.0 + 3.0) / 2), ("dr_grpo", 1 / (2 * 4))],
)
def test_aggregation_by_hand(loss_type, expected):
    # On-policy (ratio 1): the per-token loss is -A on every unmasked token: [[-1, -1, .], [3, ., .]].
    logps = torch.randn(2, 3)
    settings = LossSettings(loss_type=loss_type, max_new_tokens=4)
    loss, _ = per_token_loss(logps, logps, ADV, MASK, settings)
    total = aggregate(loss, MASK, settings, StepTotals(num_tokens=3, num_sequences=2, num_micro_batches=1))
    assert float(total) == pytest.approx(expected)


def test_clipping_removes_gradient_and_clip_higher_widens_it():
    old = torch.zeros(1, 4)
    # ratios 1.5 (A>0: clipped at 1.2), 1.25 (inside 1 + 0.28, outside 1 + 0.2), 1.0, 0.5
    logps = torch.log(torch.tensor([[1.5, 1.25, 1.0, 0.5]])).requires_grad_()
    mask = torch.ones(1, 4)
    settings = LossSettings(epsilon=0.2, epsilon_high=0.2)
    loss, parts = per_token_loss(logps, old, torch.tensor([1.0]), mask, settings)
    torch.testing.assert_close(loss, torch.tensor([[-1.2, -1.2, -1.0, -0.5]]))
    loss.sum().backward()
    assert logps.grad[0, 0] == 0 and logps.grad[0, 1] == 0  # clipped: no gradient
    assert logps.grad[0, 2] != 0 and logps.grad[0, 3] != 0
    assert parts.high_clipped.tolist() == [[True, True, False, False]]

    wider = LossSettings(epsilon=0.2, epsilon_high=0.28)
    loss, parts = per_token_loss(logps.detach(), old, torch.tensor([1.0]), mask, wider)
    torch.testing.assert_close(loss, torch.tensor([[-1.28, -1.25, -1.0, -0.5]]))
    assert parts.high_clipped.tolist() == [[True, False, False, False]]


def test_negative_advantage_low_clip_and_delta_cap():
    old = torch.zeros(1, 2)
    logps = torch.log(torch.tensor([[0.5, 5.0]]))
    mask = torch.ones(1, 2)
    adv = torch.tensor([-1.0])
    loss, parts = per_token_loss(logps, old, adv, mask, LossSettings())
    # ratio 0.5: min(-0.5, -0.8) = -0.8 -> loss 0.8 (low clip); ratio 5: min(-5, -1.2) -> loss 5 (unbounded)
    torch.testing.assert_close(loss, torch.tensor([[0.8, 5.0]]))
    assert parts.low_clipped.tolist() == [[True, False]]
    capped, _ = per_token_loss(logps, old, adv, mask, LossSettings(delta=4.0))
    torch.testing.assert_close(capped, torch.tensor([[0.8, 4.0]]))


def test_sequence_level_ratio_is_the_geometric_mean():
    old = torch.zeros(1, 3)
    logps = torch.tensor([[0.2, 0.4, 9.0]])  # the third token is masked out and must not count
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    _, parts = per_token_loss(logps, old, torch.tensor([0.0]), mask, LossSettings(importance_sampling_level="sequence"))
    torch.testing.assert_close(parts.ratio[0, :2], torch.full((2,), math.exp(0.3)))


def test_k3_kl_by_hand():
    logps = torch.tensor([[-1.0, -2.0]])
    ref = logps + torch.tensor([[math.log(2.0), 0.0]])
    loss, parts = per_token_loss(
        logps, logps, torch.tensor([0.0]), torch.ones(1, 2), LossSettings(beta=0.5), ref_logps=ref
    )
    expected_kl = torch.tensor([[2.0 - math.log(2.0) - 1.0, 0.0]])
    torch.testing.assert_close(parts.kl, expected_kl)
    torch.testing.assert_close(loss, 0.5 * expected_kl)


def test_masked_tokens_contribute_nothing():
    torch.manual_seed(0)
    logps = torch.randn(2, 3, requires_grad=True)
    old = logps.detach() + 0.1 * torch.randn(2, 3)
    ref = logps.detach() + 0.1 * torch.randn(2, 3)
    settings = LossSettings(beta=0.1, loss_type="grpo")
    totals = StepTotals(num_tokens=3, num_sequences=2, num_micro_batches=1)
    loss, _ = per_token_loss(logps, old, ADV, MASK, settings, ref)
    total = aggregate(loss, MASK, settings, totals)
    total.backward()
    assert (logps.grad[MASK == 0] == 0).all()
    garbage = logps.detach().clone()
    garbage[MASK == 0] = 50.0  # anything at masked positions
    loss2, _ = per_token_loss(garbage, old.masked_fill(MASK == 0, -7.0), ADV, MASK, settings, ref)
    assert float(aggregate(loss2, MASK, settings, totals)) == pytest.approx(float(total.detach()))


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_micro_batches_sum_to_the_full_batch(loss_type):
    torch.manual_seed(1)
    logps, old = torch.randn(4, 5), torch.randn(4, 5)
    mask = (torch.rand(4, 5) > 0.3).float()
    adv = torch.randn(4)
    settings = LossSettings(loss_type=loss_type, max_new_tokens=5)
    tokens = int(mask.sum())
    whole = aggregate(per_token_loss(logps, old, adv, mask, settings)[0], mask, settings, StepTotals(tokens, 4, 1))
    parts = sum(
        aggregate(
            per_token_loss(logps[i], old[i], adv[i], mask[i], settings)[0],
            mask[i],
            settings,
            StepTotals(tokens, 4, 2),
        )
        for i in (slice(0, 2), slice(2, 4))
    )
    assert float(parts) == pytest.approx(float(whole), rel=1e-6)


def test_masked_mean_of_empty_mask_is_zero():
    assert float(masked_mean(torch.ones(2, 2), torch.zeros(2, 2))) == 0.0


def test_bias_corrected_kl_uses_the_ratio_before_the_delta_cap():
    """kl_bias_correction weights k3 by the unclipped ratio even when delta caps the surrogate's ratio: a
    mutation that multiplies by the capped ratio changes this value (and TRL's definition)."""
    from workers.engine.loss import LossSettings, per_token_loss

    old = torch.zeros(1, 2)
    logps = torch.tensor([[math.log(5.0), 0.0]])  # ratio 5 on the first token, above delta = 2
    ref = torch.tensor([[0.3, -0.2]])
    settings = LossSettings(beta=0.5, kl_bias_correction=True, delta=2.0)
    loss, parts = per_token_loss(logps, old, torch.tensor([-1.0]), torch.ones(1, 2), settings, ref)
    diff = ref - logps
    k3 = torch.exp(diff) - diff - 1.0
    assert torch.allclose(parts.kl, k3 * torch.tensor([[5.0, 1.0]]))
    # surrogate with A < 0: -min(r A, clip(r) A) with r capped at delta = 2, clip at 1.2 -> 2
    assert torch.allclose(loss, torch.tensor([[2.0, 1.0]]) + 0.5 * k3 * torch.tensor([[5.0, 1.0]]))


@pytest.mark.parametrize("mode", ["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"])
def test_sampling_weights_follow_their_definition(mode):
    from workers.engine.loss import sampling_weights

    trainer = torch.log(torch.tensor([[0.5, 0.2, 0.9], [0.3, 0.3, 0.3]]))
    sampler = torch.log(torch.tensor([[0.1, 0.4, 0.9], [0.3, 0.2, 0.7]]))
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    w = sampling_weights(trainer, sampler, mask, mode, cap=3.0)
    token = torch.tensor([[5.0, 0.5, 1.0], [1.0, 1.5, 3 / 7]])  # p_trainer / p_sampler, 1 off the mask
    raw = token if mode.startswith("token") else token.prod(dim=1, keepdim=True).expand_as(token)
    expected = raw.clamp(max=3.0) if mode.endswith("truncate") else torch.where(raw > 3.0, 0.0, raw)
    torch.testing.assert_close(w, expected)
    assert not w.requires_grad


def test_leave_one_out_baseline_is_the_mean_of_the_others():
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.25, 3.0, 1.0, 2.0, 2.0])
    advantages, _ = group_advantages(rewards, 4, "none", 1e-4, baseline="leave_one_out")
    grouped = rewards.double().view(2, 4)
    others = (grouped.sum(dim=1, keepdim=True) - grouped) / 3
    torch.testing.assert_close(advantages, (grouped - others).view(-1).float())
    scaled, _ = group_advantages(rewards, 4, "group", 1e-4, baseline="leave_one_out")
    expected = (grouped - others) / (grouped.std(dim=1, keepdim=True) + 1e-4)
    torch.testing.assert_close(scaled, expected.view(-1).float())
    # an unscorable completion is left out of the others' baseline and gets 0
    with_nan, _ = group_advantages(torch.tensor([1.0, math.nan, 0.0, 2.0]), 4, "none", 1e-4, "leave_one_out")
    torch.testing.assert_close(with_nan, torch.tensor([0.0, 0.0, -1.5, 1.5]))
