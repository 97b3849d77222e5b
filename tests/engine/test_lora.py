"""LoRA runs (model.lora in a job spec): adapters train, the base weights do not, the reference for
beta > 0 is the base model with the adapters disabled (no second copy), checkpoints hold the adapters
only, and a resumed LoRA run continues exactly."""

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from tests.utils.engine import Cancelled, RecordingSink, digit_rows, make_config, repeat_reward
from workers.engine import LoraSettings, latest_checkpoint, train
from workers.engine.model import load_policy, load_reference

LORA = LoraSettings(r=4, alpha=8, target_modules=("q_proj", "v_proj"))


def test_lora_trains_adapters_only_against_the_base_model(tmp_path, model_cache):
    config = make_config(model_cache, max_steps=4, beta=0.04, lora=LORA, learning_rate=1e-2)
    assert load_reference(config, torch.device("cpu")) is None  # beta > 0, yet nothing extra is loaded
    sink = RecordingSink()
    result = train(config, digit_rows(), repeat_reward, sink, work_dir=tmp_path)

    files = {p.name for p in result.final_checkpoint.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    assert "model.safetensors" not in files
    adapters = load_file(str(result.final_checkpoint / "adapter_model.safetensors"))
    assert adapters and all("lora_" in name for name in adapters)
    assert any("lora_B" in name and value.abs().max() > 0 for name, value in adapters.items())  # B starts at 0

    base = load_policy(config, torch.device("cpu"))
    original = {name: value.clone() for name, value in base.state_dict().items()}
    trained = PeftModel.from_pretrained(base, str(result.final_checkpoint))
    merged = trained.merge_and_unload().state_dict()
    changed = [name for name in original if not torch.equal(original[name], merged[name])]
    assert changed and all(any(t in name for t in LORA.target_modules) for name in changed)
    # once the adapters have moved, the policy differs from the reference (the base model)
    assert sink.steps[-1].metrics["kl"] > 0


def test_lora_run_resumes_bit_for_bit(tmp_path, model_cache):
    config = make_config(model_cache, max_steps=4, checkpoint_every=2, beta=0.04, lora=LORA, learning_rate=1e-2)
    straight = RecordingSink()
    train(config, digit_rows(), repeat_reward, straight, work_dir=tmp_path / "straight")
    interrupted = RecordingSink(raise_at=3)
    with pytest.raises(Cancelled):
        train(config, digit_rows(), repeat_reward, interrupted, work_dir=tmp_path / "resumed")
    resumed = RecordingSink()
    checkpoint = latest_checkpoint(tmp_path / "resumed")
    train(config, digit_rows(), repeat_reward, resumed, work_dir=tmp_path / "resumed", resume_from=checkpoint)
    assert [r.step for r in resumed.steps] == [3, 4]
    assert resumed.run_metrics() == straight.run_metrics()[2:]


def test_lora_reference_logprobs_are_the_base_models_exactly(tmp_path, model_cache, monkeypatch):
    """With beta > 0 the LoRA run's reference log-probs (the policy with adapters disabled) are the base
    model's, bit for bit, after the adapters have moved (step 2)."""
    import importlib

    from workers.engine.update import score_batch

    train_module = importlib.import_module("workers.engine.train")
    batches = []
    real_update = train_module.update_policy

    def spy(model, parameters, optimizer, scheduler, batch, *args, **kwargs):
        batches.append(batch)
        return real_update(model, parameters, optimizer, scheduler, batch, *args, **kwargs)

    monkeypatch.setattr(train_module, "update_policy", spy)
    config = make_config(model_cache, max_steps=2, beta=0.04, lora=LORA, learning_rate=1e-2, temperature=0.8)
    sink = RecordingSink()
    train(config, digit_rows(), repeat_reward, sink, work_dir=tmp_path)
    base = load_policy(config, torch.device("cpu")).eval()
    assert sink.steps[-1].metrics["kl"] > 0  # the adapters moved: the policy is not the reference
    for batch in batches:
        expected = score_batch(base, batch, config.micro_batch_size, config.temperature)
        assert torch.equal(batch.ref_logps, expected)
