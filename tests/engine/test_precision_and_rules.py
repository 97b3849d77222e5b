"""Issue 17, defects 2, 4 and 6: the reference computes exactly as the policy did at step 0 in every
precision (KL == 0 at step 0), LoRA + ref_model_sync_steps is rejected where the knobs are checked,
and the entropy metric is the pre-update policy's (iteration 0), as metrics.py now says."""

from __future__ import annotations

import importlib

import pytest
import torch

from workers.engine import GRPOConfig, LoraSettings, train
from workers.engine.logprobs import completion_logprobs
from workers.engine.metrics import METRICS
from workers.engine.model import load_policy

from .conftest import RecordingSink, digit_rows, make_config, repeat_reward


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_kl_is_zero_at_step_zero_in_every_precision(tmp_path, model_cache, precision):
    # lr 0 keeps the policy at its initial weights for both steps: the KL must stay exactly 0.
    config = make_config(model_cache, max_steps=1, beta=0.04, precision=precision, max_new_tokens=6)
    sink = RecordingSink()
    train(config, digit_rows(), repeat_reward, sink, work_dir=tmp_path)
    assert sink.steps[0].metrics["kl"] == 0.0


def test_lora_with_reference_sync_is_rejected_by_the_engine_config():
    with pytest.raises(ValueError, match="ref_model_sync_steps cannot be used with lora"):
        GRPOConfig(beta=0.04, ref_model_sync_steps=2, lora=LoraSettings(r=4))
    GRPOConfig(beta=0.04, ref_model_sync_steps=2)  # full fine-tuning: allowed


def test_entropy_is_the_pre_update_policys_on_iteration_zero(tmp_path, model_cache, monkeypatch):
    assert "first" in METRICS["entropy"] and "iteration" in METRICS["entropy"]
    train_module = importlib.import_module("workers.engine.train")

    captured = {}
    real_update = train_module.update_policy

    def spy(model, *args, **kwargs):
        captured["batch"] = args[3]
        return real_update(model, *args, **kwargs)

    monkeypatch.setattr(train_module, "update_policy", spy)
    config = make_config(model_cache, max_steps=1, num_iterations=3, learning_rate=5e-2)
    sink = RecordingSink()
    train(config, digit_rows(), repeat_reward, sink, work_dir=tmp_path)
    batch = captured["batch"]
    initial = load_policy(config, torch.device("cpu")).eval()  # the weights before the step's updates
    with torch.no_grad():
        _, entropy = completion_logprobs(
            initial, batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask,
            temperature=config.temperature, with_entropy=True,
        )  # fmt: skip
    expected = float((entropy * batch.loss_mask).sum() / batch.loss_mask.sum())
    assert sink.steps[0].metrics["entropy"] == pytest.approx(expected, rel=1e-5)
