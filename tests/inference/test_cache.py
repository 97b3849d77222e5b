"""The inference model cache: LRU eviction under a memory budget, LoRA adapters sharing one base."""

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from workers.engine.model import load_tokenizer
from workers.engine.tiny import TinySpec, build_tiny_model
from workers.inference.cache import ModelCache, ModelSource, ModelUnavailable

PROMPT = torch.tensor([[5, 6, 7, 8]])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("models")
    return [build_tiny_model(root, TinySpec(seed=seed)) for seed in range(3)]


def base(path: Path) -> ModelSource:
    return ModelSource(key=str(path), path=path)


def logits(cache: ModelCache, source: ModelSource) -> torch.Tensor:
    with cache.use(source) as loaded, torch.no_grad():
        return loaded.module(input_ids=PROMPT).logits


def test_least_recently_used_model_is_evicted_to_fit_the_budget(models: list[Path]) -> None:
    one = ModelCache(budget_bytes=10**9)
    with one.use(base(models[0])):
        size = one.used_bytes
    cache = ModelCache(budget_bytes=int(size * 2.5))  # room for two
    for path in (models[0], models[1], models[0], models[2]):  # models[1] is the least recently used
        logits(cache, base(path))
    assert cache.keys() == [str(models[0]), str(models[2])]
    assert cache.evictions == 1 and cache.loads == 3
    assert cache.used_bytes <= cache.budget


def test_a_model_larger_than_the_budget_still_loads_alone(models: list[Path]) -> None:
    cache = ModelCache(budget_bytes=1)
    logits(cache, base(models[0]))
    logits(cache, base(models[1]))
    assert cache.keys() == [str(models[1])]


def test_missing_files_are_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable), ModelCache(10**9).use(base(tmp_path)):
        pass


def _adapter(base_path: Path, out: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=torch.float32)
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(out)
    load_tokenizer(str(base_path)).save_pretrained(out)
    return out


def test_lora_checkpoints_share_one_base_and_leave_it_unchanged(models: list[Path], tmp_path: Path) -> None:
    cache = ModelCache(budget_bytes=10**9)
    plain = logits(cache, base(models[0]))
    first = ModelSource(key="ckpt:a", path=_adapter(models[0], tmp_path / "a", 1), base=models[0])
    second = ModelSource(key="ckpt:b", path=_adapter(models[0], tmp_path / "b", 2), base=models[0])
    with_a, with_b = logits(cache, first), logits(cache, second)
    assert not torch.allclose(with_a, plain) and not torch.allclose(with_a, with_b)
    assert torch.allclose(logits(cache, first), with_a)  # switching back applies adapter a again
    assert torch.allclose(logits(cache, base(models[0])), plain)  # the base, with adapters off
    assert cache.loads == 3  # one base, two adapters: the base weights are in memory once
    assert set(cache.keys()) == {str(models[0]), "ckpt:a", "ckpt:b"}


def test_an_adapter_is_evicted_before_its_base_when_it_is_older(models: list[Path], tmp_path: Path) -> None:
    adapter = ModelSource(key="ckpt:a", path=_adapter(models[0], tmp_path / "a", 1), base=models[0])
    probe = ModelCache(budget_bytes=10**9)
    logits(probe, adapter)
    base_size = probe.used_bytes - sum(p.stat().st_size for p in (tmp_path / "a").glob("adapter_model.*"))
    cache = ModelCache(budget_bytes=probe.used_bytes + base_size - 1)  # two bases fit, not with the adapter
    logits(cache, adapter)
    logits(cache, base(models[0]))
    logits(cache, base(models[1]))  # needs room: the adapter (least recently used) goes first
    assert "ckpt:a" not in cache.keys() and str(models[0]) in cache.keys()
