"""The real train() path checked numerically (issue 17): one step of train() itself (rollout -> rewards
-> advantages -> update) at T != 1 with top-k, top-p, min-p and a repetition penalty on, against an
independent plain-autograd computation over the same tokens: one transformers forward of prompt +
completion per row, a full log-softmax, the GRPO loss written out, torch.autograd. A wrong temperature
at any call site, a wrong sampler log-prob, advantage, importance weight or mini-batch split fails it.

Tolerances (fp32, CPU, one thread): the engine's scorer (shared prompts, length buckets, selective head)
and the plain forward agree to rounding: log-probs within ~1e-6, gradients within ~1e-6 relative
(measured when written); bounds below leave room.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import pytest
import torch
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from workers.engine import RewardBatch, train
from workers.engine.model import load_policy

from .conftest import RecordingSink, digit_rows, gradient_errors, make_config, repeat_reward

LOGP_TOLERANCE = {"rtol": 0, "atol": 2e-5}
GRAD_TOLERANCE = 2e-5

train_module = importlib.import_module("workers.engine.train")
update_module = importlib.import_module("workers.engine.update")


def run_one_step(tmp_path, monkeypatch, config) -> dict[str, Any]:
    """train() for one step, capturing the rewards it scored, the batch it trained on and the gradient
    handed to each optimiser update (in update order)."""
    seen: dict[str, Any] = {"grads": []}

    def reward(_prompts, completions, _rows):
        total = [float(sum(map(ord, text)) % 7) for text in completions]  # spread within every group
        seen.setdefault("rewards", []).extend(total)
        return RewardBatch(total=total, components={"hash": total})

    real_update, real_step = train_module.update_policy, update_module.clip_and_step

    def spy_update(model, parameters, *args, **kwargs):
        seen["batch"], seen["names"] = args[2], [n for n, p in model.named_parameters() if p.requires_grad]
        return real_update(model, parameters, *args, **kwargs)

    def spy_step(parameters, *args, **kwargs):
        seen["grads"].append([p.grad.clone() for p in parameters])
        return real_step(parameters, *args, **kwargs)

    monkeypatch.setattr(train_module, "update_policy", spy_update)
    monkeypatch.setattr(update_module, "clip_and_step", spy_step)
    sink = RecordingSink()
    train(config, digit_rows(), reward, sink, work_dir=tmp_path)
    seen["metrics"] = sink.steps[0].metrics
    return seen


def plain_logits(model, batch) -> torch.Tensor:
    """(N, C, V) logits predicting each completion token: one plain transformers forward per row."""
    ids = torch.cat([batch.prompt_ids, batch.completion_ids], dim=1)
    attention = torch.cat([batch.prompt_mask, batch.completion_mask], dim=1)
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=attention, position_ids=positions).logits.float()
    return logits[:, batch.prompt_ids.size(1) - 1 : -1]


def reference_advantages(rewards: list[float], group: int, baseline: str) -> torch.Tensor:
    r = torch.tensor(rewards, dtype=torch.float64).view(-1, group)
    if baseline == "mean":
        centred = r - r.mean(dim=1, keepdim=True)
    else:  # each reward minus the mean of the others
        centred = r - (r.sum(dim=1, keepdim=True) - r) / (group - 1)
    return (centred / (r.std(dim=1, keepdim=True) + 1e-4)).view(-1).float()


PLAIN = {"top_k": 0, "top_p": 1.0, "min_p": 0.0}
SAMPLING = {"temperature": 0.7, "top_k": 8, "top_p": 0.9, "min_p": 0.05, "repetition_penalty": 1.5}


@pytest.mark.parametrize(
    "knobs",
    [
        {},
        # a strong repetition penalty and no truncation: repeated tokens get w = p_trainer / p_sampler > 1
        {"sampling_correction": "token_truncate", "sampling_correction_cap": 1.5, "repetition_penalty": 3.0, **PLAIN},
        {
            "sampling_correction": "sequence_mask",
            "sampling_correction_cap": 2.0,
            "repetition_penalty": 3.0,
            "advantage_baseline": "leave_one_out",
            **PLAIN,
        },
        {"steps_per_generation": 2, "micro_batch_size": 5},
    ],
    ids=["plain", "tis", "sequence-mis-rloo", "two-mini-batches"],
)
def test_train_step_matches_a_plain_autograd_reference(tmp_path, monkeypatch, model_cache, knobs):
    config = make_config(
        model_cache, max_steps=1, max_new_tokens=5, learning_rate=1e-2, max_grad_norm=None, loss_type="dapo",
        **{**SAMPLING, **knobs},
    )  # fmt: skip
    seen = run_one_step(tmp_path, monkeypatch, config)
    batch, G = seen["batch"], config.group_size
    model = load_policy(config, torch.device("cpu"))  # the initial weights: the policy that sampled
    params = dict(model.named_parameters())
    mask = batch.completion_mask.float()

    # the rollout's masks are the real ones (EOS ends a row, padding after it)
    lengths = batch.completion_mask.sum(1)
    assert torch.equal(batch.completion_mask, (torch.arange(mask.size(1))[None] < lengths[:, None]).long())

    # advantages from the scored rewards
    expected_adv = reference_advantages(seen["rewards"], G, config.advantage_baseline)
    torch.testing.assert_close(batch.advantages, expected_adv, rtol=1e-6, atol=1e-6)

    logits = plain_logits(model, batch)  # (N, C, V)
    # the sampler's log-probs: the processed distribution (transformers' warpers, in generate's order)
    penalised = logits.clone()
    for row in range(logits.size(0)):  # the penalty sees the real prompt tokens and the completion so far
        prompt = batch.prompt_ids[row][batch.prompt_mask[row].bool()]
        for t in range(logits.size(1)):
            history = torch.cat([prompt, batch.completion_ids[row, :t]])[None]
            penalty = RepetitionPenaltyLogitsProcessor(config.repetition_penalty)
            penalised[row, t] = penalty(history, logits[row, t][None].clone())[0]
    flat = penalised.reshape(-1, logits.size(-1))
    warpers = [TemperatureLogitsWarper(config.temperature)]
    warpers += [TopKLogitsWarper(config.top_k)] if config.top_k else []
    warpers += [TopPLogitsWarper(config.top_p)] if config.top_p < 1 else []
    warpers += [MinPLogitsWarper(config.min_p)] if config.min_p else []
    for warper in warpers:
        flat = warper(None, flat)
    processed = torch.log_softmax(flat, dim=-1).view_as(logits)
    sampler = processed.gather(2, batch.completion_ids[..., None]).squeeze(2) * mask
    torch.testing.assert_close(batch.sampler_logps, sampler.detach(), **LOGP_TOLERANCE)
    assert seen["metrics"]["sampling/logp_diff_max"] > 1e-3  # the processors make the update off-policy

    # the loss written out, mini-batch by mini-batch (contiguous row ranges), each its own dapo mean
    logp_all = torch.log_softmax(logits / 0.7, dim=-1).gather(2, batch.completion_ids[..., None]).squeeze(2)
    old = logp_all.detach()
    mode, cap = config.sampling_correction, config.sampling_correction_cap
    assert len(seen["grads"]) == config.steps_per_generation
    for part, engine_grads in zip(
        torch.arange(mask.size(0)).tensor_split(config.steps_per_generation), seen["grads"], strict=True
    ):
        model.zero_grad()
        logits = plain_logits(model, batch)  # fresh graph; the weights are still the initial ones here
        logp = torch.log_softmax(logits / 0.7, dim=-1).gather(2, batch.completion_ids[..., None]).squeeze(2)
        ratio = torch.exp(logp - old)  # 1, with the gradient of logp
        token_loss = -ratio * batch.advantages[:, None]
        if mode != "off":
            log_w = (old - batch.sampler_logps) * mask
            if mode.startswith("sequence"):
                log_w = log_w.sum(1, keepdim=True).expand_as(log_w)
            w = log_w.exp()
            w = w.clamp(max=cap) if mode.endswith("truncate") else torch.where(w > cap, 0.0, w)
            assert 0 < int(((w == cap) if mode.endswith("truncate") else (w == 0)).sum()) < mask.numel()
            token_loss = token_loss * w
        loss = (token_loss * mask)[part].sum() / mask[part].sum()
        loss.backward()
        reference = {name: params[name].grad for name in seen["names"]}
        ours = dict(zip(seen["names"], engine_grads, strict=True))
        total, worst = gradient_errors(ours, reference)
        assert total < GRAD_TOLERANCE and worst < 10 * GRAD_TOLERANCE, (total, worst)
        if config.steps_per_generation > 1:
            break  # the second update's policy has moved: its gradient is checked by test_update's split test


def test_plain_sampling_reports_no_mismatch_and_the_processors_do(tmp_path, model_cache):
    """Temperature alone keeps the update on-policy (the loss scores softmax(logits / T) too): the mismatch
    metrics are 0 up to fp32 rounding; top-p makes it off-policy, and the metrics show it."""
    plain, nucleus = RecordingSink(), RecordingSink()
    config = make_config(model_cache, max_steps=1, max_new_tokens=5, temperature=0.7)
    train(config, digit_rows(), repeat_reward, plain, work_dir=tmp_path / "plain")
    train(dataclasses.replace(config, top_p=0.8), digit_rows(), repeat_reward, nucleus, work_dir=tmp_path / "top_p")
    assert plain.steps[0].metrics["sampling/logp_diff_max"] < 1e-5
    assert abs(plain.steps[0].metrics["sampling/kl"]) < 1e-9
    assert nucleus.steps[0].metrics["sampling/logp_diff_mean"] > 1e-3
    assert nucleus.steps[0].metrics["sampling/kl"] > 1e-4
