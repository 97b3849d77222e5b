"""Exports of saved checkpoints for people who want a plain model: a LoRA adapter merged into its base.

A LoRA checkpoint holds only the adapters (peft's save_pretrained); loading it needs peft and the base
model. The merged export folds W + (alpha / r) * B @ A into every adapted linear layer and writes a
normal save_pretrained directory that stock `AutoModelForCausalLM.from_pretrained` loads.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, cast

from workers.engine.state import load_checkpoint_model


def merge_lora_checkpoint(checkpoint: Path, out_dir: Path, *, device: str | None = None) -> Path:
    """Write base model + the checkpoint's adapters, merged, to `out_dir` (atomically); return it."""
    model, tokenizer, config, _ = load_checkpoint_model(Path(checkpoint), device=device)
    if config.lora is None:
        raise ValueError(f"{checkpoint} is not a LoRA checkpoint: it already is a full model")
    merged = cast(Any, model).merge_and_unload()  # a peft model (config.lora is set)
    merged.config.use_cache = True  # training turned the KV cache off; a user generating wants it
    out_dir = Path(out_dir)
    staging = out_dir.with_name(f".tmp-{out_dir.name}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    merged.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
    return out_dir
