"""Properties of the advantage and loss functions (hypothesis), and the same properties through the
update path on the tiny model: invariances of the advantages, ties carry no signal, masked tokens
count for nothing, and micro-batching does not change the step (for the loss types that promise it).

Examples are bounded (derandomized, a few dozen each; a handful where the tiny model runs) so the
file takes a few seconds; the engine's fixed-seed tests live in test_loss.py and test_parity_trl.py.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st

from tests.utils.engine import gradient_errors, make_config
from workers.engine.loss import LossSettings, StepTotals, aggregate, group_advantages, per_token_loss
from workers.engine.model import load_policy
from workers.engine.train import loss_settings
from workers.engine.update import PolicyBatch, update_policy

# The autouse one-thread fixture is function-scoped; sharing it across examples is harmless.
_COMMON = {"deadline": None, "derandomize": True, "suppress_health_check": [HealthCheck.function_scoped_fixture]}
FAST = settings(max_examples=40, **_COMMON)
# Examples that run the tiny model: few, and no shrinking, so a failure reports in seconds, not minutes.
MODEL = settings(max_examples=6, phases=[Phase.explicit, Phase.reuse, Phase.generate], **_COMMON)

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALES = ("group", "batch", "none")
reward_values = st.floats(-10, 10, allow_nan=False, width=32)


@st.composite
def reward_batches(draw: st.DrawFn) -> tuple[torch.Tensor, int]:
    """(P * G,) float32 rewards grouped by prompt, with ties and repeated values likely."""
    group = draw(st.integers(2, 9))
    prompts = draw(st.integers(1, 4))
    pool = draw(st.lists(reward_values, min_size=1, max_size=4))  # few distinct values: ties are common
    rewards = draw(st.lists(st.sampled_from(pool) | reward_values, min_size=group * prompts, max_size=group * prompts))
    return torch.tensor(rewards, dtype=torch.float32), group


@st.composite
def loss_cases(draw: st.DrawFn) -> dict:
    """Random log-probs, old / reference log-probs, a mask and loss settings."""
    rows, width = draw(st.integers(1, 6)), draw(st.integers(1, 7))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    logps = -3 * torch.rand(rows, width, generator=generator, dtype=torch.float64)
    mask = (torch.rand(rows, width, generator=generator) < draw(st.floats(0.2, 1.0))).double()
    mask[:, 0] = 1.0  # completions have at least one token
    epsilon = draw(st.sampled_from([0.1, 0.2]))
    loss_settings_ = LossSettings(
        loss_type=draw(st.sampled_from(LOSS_TYPES)),
        epsilon=epsilon,
        epsilon_high=epsilon + draw(st.sampled_from([0.0, 0.08])),
        delta=draw(st.sampled_from([None, 1.5])),
        importance_sampling_level=draw(st.sampled_from(["token", "sequence"])),
        beta=draw(st.sampled_from([0.0, 0.04])),
        max_new_tokens=width,
    )
    return {
        "logps": logps,
        "old": logps + 0.3 * torch.randn(rows, width, generator=generator, dtype=torch.float64),
        "ref": logps + 0.3 * torch.randn(rows, width, generator=generator, dtype=torch.float64),
        "advantages": torch.randn(rows, generator=generator, dtype=torch.float64),
        "mask": mask,
        "settings": loss_settings_,
        "generator": generator,
    }


def step_loss(case: dict, logps: torch.Tensor, advantages: torch.Tensor | None = None, **overrides) -> torch.Tensor:
    """The whole-step loss of a case as one micro-batch (overrides replace old / ref / mask)."""
    mask = overrides.get("mask", case["mask"])
    loss, _ = per_token_loss(
        logps,
        overrides.get("old", case["old"]),
        case["advantages"] if advantages is None else advantages,
        mask,
        case["settings"],
        overrides.get("ref", case["ref"]),
    )
    totals = StepTotals(num_tokens=int(mask.sum()), num_sequences=logps.size(0), num_micro_batches=1)
    return aggregate(loss, mask, case["settings"], totals)


# ------------------------------------------------------------------------------------------------
# advantages


@FAST
@given(reward_batches(), st.sampled_from(SCALES), st.floats(-50, 50, allow_nan=False))
def test_advantages_ignore_a_constant_reward_shift(batch, scale, shift):
    rewards, group = batch
    rewards = rewards.double()  # the shift itself must not round the rewards
    base, _ = group_advantages(rewards, group, scale, 1e-4)
    shifted, _ = group_advantages(rewards + shift, group, scale, 1e-4)
    torch.testing.assert_close(shifted, base, rtol=1e-9, atol=1e-8)


@FAST
@given(reward_batches(), st.sampled_from(SCALES), st.floats(0.01, 100))
def test_advantages_under_positive_scaling(batch, scale, factor):
    """'group' / 'batch': invariant when epsilon scales with the rewards (it is an additive guard on the
    std); 'none': scales with them."""
    rewards, group = batch
    rewards = rewards.double()
    base, _ = group_advantages(rewards, group, scale, 1e-4)
    scaled, _ = group_advantages(rewards * factor, group, scale, 1e-4 * factor)
    torch.testing.assert_close(scaled, base * factor if scale == "none" else base, rtol=1e-9, atol=1e-9)


@FAST
@given(st.lists(reward_values, min_size=1, max_size=5), st.integers(2, 16), st.sampled_from(SCALES))
def test_tied_groups_get_exactly_zero_advantage(values, group, scale):
    """In float32, as the engine computes them: the mean of G equal rewards must be that reward."""
    rewards = torch.tensor(values, dtype=torch.float32).repeat_interleave(group)
    advantages, std = group_advantages(rewards, group, scale, 1e-4)
    assert advantages.dtype == torch.float32
    assert (advantages == 0).all(), advantages
    assert (std == 0).all()


@FAST
@given(reward_batches(), st.sampled_from(SCALES))
def test_advantages_sum_to_zero_in_each_group(batch, scale):
    rewards, group = batch
    advantages, _ = group_advantages(rewards, group, scale, 1e-4)
    assert advantages.isfinite().all()
    sums = advantages.double().view(-1, group).sum(dim=1)
    assert sums.abs().max() <= 1e-4 * (1 + advantages.abs().max())


# ------------------------------------------------------------------------------------------------
# the loss


@FAST
@given(loss_cases())
def test_zero_advantages_give_zero_policy_gradient(case):
    """All groups tied -> A = 0 -> no policy-gradient term: with beta = 0 the gradient is exactly zero
    (clipping, delta and sequence-level ratios notwithstanding); with beta > 0 only the KL pulls."""
    logps = case["logps"].clone().requires_grad_()
    zeros = torch.zeros_like(case["advantages"])
    loss = step_loss(case, logps, zeros)
    loss.backward()
    if case["settings"].beta == 0.0:
        assert float(loss.detach()) == 0.0 and (logps.grad == 0).all()
        return
    kl_logps = case["logps"].clone().requires_grad_()
    diff = case["ref"] - kl_logps
    mask = case["mask"]
    totals = StepTotals(num_tokens=int(mask.sum()), num_sequences=mask.size(0), num_micro_batches=1)
    kl_only = aggregate(case["settings"].beta * (diff.exp() - diff - 1), mask, case["settings"], totals)
    kl_only.backward()
    torch.testing.assert_close(loss.detach(), kl_only.detach(), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(logps.grad, kl_logps.grad, rtol=1e-12, atol=1e-15)


@FAST
@given(loss_cases())
def test_masked_tokens_contribute_nothing(case):
    """Any values at masked positions (log-probs, old, reference) leave the loss unchanged and get no
    gradient."""
    garbage = torch.randn(case["logps"].shape, generator=case["generator"], dtype=torch.float64) * 5
    hidden = case["mask"] == 0
    logps = case["logps"].clone().requires_grad_()
    loss = step_loss(case, logps)
    loss.backward()
    assert (logps.grad[hidden] == 0).all()
    other = step_loss(
        case,
        case["logps"].masked_scatter(hidden, garbage[hidden]),
        old=case["old"].masked_scatter(hidden, -garbage[hidden]),
        ref=case["ref"].masked_scatter(hidden, garbage[hidden].abs()),
    )
    torch.testing.assert_close(other, loss.detach(), rtol=1e-12, atol=1e-12)


@FAST
@given(loss_cases(), st.data())
def test_micro_batch_shares_sum_to_the_step_loss_and_gradient(case, data):
    """grpo, dr_grpo and dapo: any split of the rows into micro-batches gives the step's loss and
    gradient (bnpo is defined per micro-batch, so it is left out)."""
    assume(case["settings"].loss_type != "bnpo")
    rows = case["logps"].size(0)
    order = torch.tensor(data.draw(st.permutations(range(rows))))
    cuts = sorted(data.draw(st.sets(st.integers(1, rows - 1), max_size=rows - 1))) if rows > 1 else []
    chunks = [c for c in torch.tensor_split(order, cuts) if c.numel()]
    mask = case["mask"]
    totals = StepTotals(num_tokens=int(mask.sum()), num_sequences=rows, num_micro_batches=len(chunks))

    logps = case["logps"].clone().requires_grad_()
    whole = step_loss(case, logps)
    (whole_grad,) = torch.autograd.grad(whole, logps)
    split = case["logps"].clone().requires_grad_()
    total = 0.0
    for index in chunks:
        loss, _ = per_token_loss(
            split[index],
            case["old"][index],
            case["advantages"][index],
            mask[index],
            case["settings"],
            case["ref"][index],
        )
        share = aggregate(loss, mask[index], case["settings"], totals)
        share.backward()
        total += float(share.detach())
    assert total == pytest.approx(float(whole.detach()), rel=1e-10, abs=1e-12)
    torch.testing.assert_close(split.grad, whole_grad, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# the same properties through the update path (tiny model, log-probs from the model)


def tiny_batch(model_cache, seed: int, rewards: torch.Tensor, group: int) -> tuple[torch.nn.Module, PolicyBatch]:
    generator = torch.Generator().manual_seed(seed)
    rows = rewards.numel()
    model = load_policy(make_config(model_cache), torch.device("cpu"))
    vocab = model.config.vocab_size
    prompt_lengths = torch.randint(1, 5, (rows // group,), generator=generator).repeat_interleave(group)
    prompt_ids = torch.randint(3, vocab, (rows, 4), generator=generator)
    prompt_mask = (torch.arange(4)[None, :] >= 4 - prompt_lengths[:, None]).long()  # left-padded
    lengths = torch.randint(1, 7, (rows,), generator=generator)
    completion_mask = (torch.arange(6)[None, :] < lengths[:, None]).long()  # right-padded
    completion_ids = torch.randint(3, vocab, (rows, 6), generator=generator) * completion_mask
    advantages, _ = group_advantages(rewards, group, "group", 1e-4)
    batch = PolicyBatch(
        prompt_ids=prompt_ids * prompt_mask,
        prompt_mask=prompt_mask,
        completion_ids=completion_ids,
        completion_mask=completion_mask,
        loss_mask=completion_mask.float(),
        advantages=advantages,
    )
    return model, batch


def update_gradients(model, batch: PolicyBatch, micro_batch_size: int | None, **knobs) -> tuple[dict, list]:
    config = make_config(None, **knobs)
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    seen: list[dict[str, torch.Tensor]] = []

    class Recorder(torch.optim.SGD):
        def step(self, closure=None):  # noqa: ARG002
            seen.append({n: p.grad.detach().clone() for n, p in named.items()})

    optimizer = Recorder(list(named.values()), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    metrics = update_policy(
        model,
        list(named.values()),
        optimizer,
        scheduler,
        batch,
        loss_settings(config),
        num_iterations=1,
        micro_batch_size=micro_batch_size,
        temperature=1.0,
        max_grad_norm=None,
    )
    return metrics, seen


@MODEL
@given(st.integers(0, 10_000), reward_values, st.sampled_from(LOSS_TYPES), st.sampled_from([3, 7, 8]))
@example(0, 0.7, "dapo", 8)  # 8 x 0.7: its float32 mean is one ulp off 0.7
def test_tied_rewards_move_no_weight(model_cache, seed, value, loss_type, group):
    rewards = torch.full((2 * group,), value)
    model, batch = tiny_batch(model_cache, seed, rewards, group=group)
    metrics, seen = update_gradients(model, batch, None, loss_type=loss_type)
    assert metrics["grad_norm"] == 0.0
    assert all((g == 0).all() for g in seen[0].values())


@MODEL
@given(st.integers(0, 10_000), st.sampled_from(["grpo", "dr_grpo", "dapo"]), st.integers(1, 7))
def test_micro_batching_the_update_leaves_the_gradient(model_cache, seed, loss_type, micro_batch_size):
    generator = torch.Generator().manual_seed(seed)
    rewards = torch.rand(8, generator=generator)
    model, batch = tiny_batch(model_cache, seed, rewards, group=4)
    whole_metrics, whole = update_gradients(model, batch, None, loss_type=loss_type, beta=0.0)
    split_metrics, split = update_gradients(model, batch, micro_batch_size, loss_type=loss_type, beta=0.0)
    assert split_metrics["loss"] == pytest.approx(whole_metrics["loss"], rel=1e-5, abs=1e-7)
    assert max(gradient_errors(split[0], whole[0])) <= 1e-5  # rounding only: trimmed micro-batches


@MODEL
@given(st.integers(0, 10_000))
def test_padding_token_ids_do_not_matter(model_cache, seed):
    """Whatever ids sit at padded prompt / completion positions, the update's loss and gradient are
    the same (they are masked from attention and from the loss)."""
    generator = torch.Generator().manual_seed(seed)
    model, batch = tiny_batch(model_cache, seed, torch.rand(8, generator=generator), group=4)
    _, clean = update_gradients(model, batch, None)
    vocab = model.config.vocab_size
    noisy = PolicyBatch(
        prompt_ids=torch.where(
            batch.prompt_mask.bool(),
            batch.prompt_ids,
            torch.randint(0, vocab, batch.prompt_ids.shape, generator=generator),
        ),
        prompt_mask=batch.prompt_mask,
        completion_ids=torch.where(
            batch.completion_mask.bool(),
            batch.completion_ids,
            torch.randint(0, vocab, batch.completion_ids.shape, generator=generator),
        ),
        completion_mask=batch.completion_mask,
        loss_mask=batch.loss_mask,
        advantages=batch.advantages,
    )
    _, dirty = update_gradients(model, noisy, None)
    assert max(gradient_errors(dirty[0], clean[0])) <= 1e-6
