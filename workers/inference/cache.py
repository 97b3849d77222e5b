"""The inference worker's model cache: loaded models under a memory budget, least recently used out first.

Two kinds of entries share the budget:
- a *base*: a full model in memory (an operator-allowed base model, or a full fine-tuning checkpoint);
- an *adapter*: a LoRA checkpoint's adapters, loaded by name into its base's peft wrapper. Every LoRA
  checkpoint of the same base shares that one copy of the base weights; serving the base itself then
  runs with the adapters disabled.
Loading happens on the engine thread only (one at a time), so the cache needs no lock.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase

from workers.engine.model import load_tokenizer

logger = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """The model's files are missing or cannot be loaded (404-like for the caller)."""


@dataclass(frozen=True)
class ModelSource:
    """What to load, resolved by the worker from the API's model spec: `path` holds the weights (a base or
    full checkpoint) or, with `base` set, a LoRA adapter to apply to the model at `base`."""

    key: str  # the cache key: one per distinct set of weights
    path: Path
    base: Path | None = None


@dataclass
class _Base:
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    size: int
    peft: Any = None  # peft.PeftModel once an adapter of this base is loaded
    adapters: dict[str, int] = field(default_factory=dict)  # adapter key -> bytes


@dataclass
class Loaded:
    """A model ready to run: the module to call and its tokenizer (the context sets the adapter)."""

    module: nn.Module
    tokenizer: PreTrainedTokenizerBase
    max_positions: int


def _bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def _default_loader(path: Path) -> nn.Module:
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()


class ModelCache:
    def __init__(self, budget_bytes: int, loader: Callable[[Path], nn.Module] = _default_loader) -> None:
        self.budget = budget_bytes
        self._loader = loader
        self._bases: dict[str, _Base] = {}
        self._lru: OrderedDict[str, str] = OrderedDict()  # entry key -> its base key (itself for a base)
        self.loads = 0
        self.evictions = 0

    @property
    def used_bytes(self) -> int:
        return sum(base.size + sum(base.adapters.values()) for base in self._bases.values())

    def keys(self) -> list[str]:
        """Loaded entries, least recently used first."""
        return list(self._lru)

    @contextmanager
    def use(self, source: ModelSource) -> Iterator[Loaded]:
        """Load (or reuse) `source` and yield it with its adapter active (or all adapters off for a base)."""
        base_key = str(source.base) if source.base is not None else source.key
        base = self._base(base_key, source.base or source.path)
        if source.base is not None:
            self._adapter(base, source)
            self._touch(source.key, base_key)
            base.peft.set_adapter(source.key)
            context: Any = nullcontext()
            module = base.peft
        else:
            self._touch(base_key, base_key)
            context = base.peft.disable_adapter() if base.peft is not None else nullcontext()
            module = base.model
        tokenizer = load_tokenizer(str(source.path)) if source.base is not None else base.tokenizer
        max_positions = int(getattr(base.model.config, "max_position_embeddings", 0) or 1 << 30)
        with context:
            yield Loaded(module, tokenizer, max_positions)

    def _touch(self, key: str, base_key: str) -> None:
        self._lru[key] = base_key
        self._lru.move_to_end(key)
        if key != base_key and base_key in self._lru:
            self._lru.move_to_end(base_key)  # a base is in use whenever one of its adapters is
            self._lru.move_to_end(key)

    def _base(self, key: str, path: Path) -> _Base:
        if key in self._bases:
            return self._bases[key]
        if not (path / "config.json").is_file():
            raise ModelUnavailable(f"no model files at {path}")
        try:
            model = self._loader(path)
            tokenizer = load_tokenizer(str(path))
        except (OSError, ValueError) as error:
            raise ModelUnavailable(f"could not load the model at {path}: {error}") from error
        base = _Base(model=model, tokenizer=tokenizer, size=_bytes(model))
        self._make_room(base.size, keep=key)
        self._bases[key] = base
        self._touch(key, key)
        self.loads += 1
        logger.info("loaded %s (%.1f MB); cache holds %.1f MB", key, base.size / 1e6, self.used_bytes / 1e6)
        return base

    def _adapter(self, base: _Base, source: ModelSource) -> None:
        if source.key in base.adapters:
            return
        if not (source.path / "adapter_config.json").is_file():
            raise ModelUnavailable(f"no LoRA adapter at {source.path}")
        from peft import PeftModel  # only LoRA checkpoints need peft

        size = sum(p.stat().st_size for p in source.path.glob("adapter_model.*"))
        self._make_room(size, keep=str(source.base))
        if base.peft is None:
            base.peft = PeftModel.from_pretrained(base.model, str(source.path), adapter_name=source.key).eval()
        else:
            base.peft.load_adapter(str(source.path), adapter_name=source.key)
        base.adapters[source.key] = size
        self.loads += 1

    def _make_room(self, needed: int, *, keep: str) -> None:
        """Evict least recently used entries until `needed` more bytes fit (never `keep` or its adapters;
        a single model larger than the budget still loads, alone)."""
        for key in list(self._lru):
            if self.used_bytes + needed <= self.budget:
                return
            base_key = self._lru[key]
            if key == keep or base_key == keep:
                continue
            self._evict(key, base_key)

    def _evict(self, key: str, base_key: str) -> None:
        base = self._bases.get(base_key)
        if base is None:
            self._lru.pop(key, None)
            return
        if key == base_key:  # a base goes with all its adapters
            for adapter in base.adapters:
                self._lru.pop(adapter, None)
            del self._bases[base_key]
        else:
            base.peft.delete_adapter(key)
            del base.adapters[key]
        self._lru.pop(key, None)
        self.evictions += 1
        logger.info("evicted %s from the inference cache", key)


def lora_base_path(adapter_dir: Path, resolve_source: Callable[[dict[str, Any]], Path]) -> Path:
    """The base model of a LoRA checkpoint, from the run config saved beside its adapters."""
    state = json.loads((adapter_dir / "trainer_state.json").read_text())
    return resolve_source(state["config"])
