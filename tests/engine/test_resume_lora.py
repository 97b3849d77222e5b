"""LoRA runs resume exactly too: only the adapters are checkpointed, the base is re-read from its source."""

import pytest
import torch
from safetensors.torch import load_file

from tests.utils.engine import Cancelled, RecordingSink, digit_rows, make_config, repeat_reward
from workers.engine import LoraSettings, latest_checkpoint, train


def test_lora_resume_continues_bit_for_bit(tmp_path, model_cache):
    lora = LoraSettings(r=4, alpha=8, target_modules=("q_proj", "v_proj", "up_proj"))
    config = make_config(model_cache, max_steps=4, checkpoint_every=2, lora=lora, beta=0.04)
    straight = RecordingSink()
    train(config, digit_rows(), repeat_reward, straight, work_dir=tmp_path / "straight")

    with pytest.raises(Cancelled):
        train(config, digit_rows(), repeat_reward, RecordingSink(raise_at=3), work_dir=tmp_path / "resumed")
    checkpoint = latest_checkpoint(tmp_path / "resumed")
    assert checkpoint.name == "checkpoint-000002" and not (checkpoint / "model.safetensors").exists()
    resumed = RecordingSink()
    result = train(config, digit_rows(), repeat_reward, resumed, work_dir=tmp_path / "resumed", resume_from=checkpoint)
    assert resumed.run_metrics() == straight.run_metrics()[2:]  # bitwise equal floats, KL to the base included
    a = load_file(str(tmp_path / "straight" / "checkpoint-000004" / "adapter_model.safetensors"))
    b = load_file(str(result.final_checkpoint / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
