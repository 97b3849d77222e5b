"""The trainer's state: built fresh, restored from a checkpoint, or saved into one.

Everything a resumed run needs to continue bit for bit lives in RunState: weights (policy, and the
reference when it is synced), optimiser and schedule, the sampling generator and the global torch RNG
(LoRA init, dropout), the prompt cursor, and the step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from workers.engine.checkpoint import load_trainer_state, save_checkpoint
from workers.engine.config import GRPOConfig
from workers.engine.data import PromptOrder
from workers.engine.model import (
    load_policy,
    load_reference,
    load_tokenizer,
    model_path,
    resolve_device,
    trainable_parameters,
)
from workers.engine.optim import build_optimizer

logger = logging.getLogger(__name__)

# Knobs that may differ between a run and its resume (they do not change the trajectory so far).
RESUMABLE_CHANGES = frozenset(
    {
        "max_steps",
        "checkpoint_every",
        "keep_last",
        "eval_every",
        "eval_samples_per_prompt",
        "eval_greedy",
        "eval_max_new_tokens",
        "eval_max_prompts",
        "eval_success_threshold",
        "log_samples_per_step",
        "device",
        "model_cache_dir",
        "num_threads",  # allowed, but bitwise equality with an uninterrupted run needs the same count
        "fast_paths",  # likewise: the kernels' matmuls round differently in the last bits
    }
)


@dataclass
class RunState:
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    reference: nn.Module | None  # None when beta == 0, or with LoRA (adapters disabled = reference)
    parameters: list[nn.Parameter]  # the trainable ones
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    order: PromptOrder
    generator: torch.Generator  # the sampling stream
    device: torch.device
    step: int  # steps completed


def build_policy(config: GRPOConfig, device: torch.device, checkpoint: Path | None) -> nn.Module:
    """Full fine-tuning: the checkpoint's weights (or the source's). LoRA: the source's base weights
    with fresh adapters, or with the checkpoint's adapters."""
    if config.lora is None:
        return load_policy(config, device, source=str(checkpoint) if checkpoint else None)
    from peft import LoraConfig, PeftModel, get_peft_model

    base = load_policy(config, device)
    if checkpoint is not None:
        return PeftModel.from_pretrained(base, str(checkpoint), is_trainable=True)
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=list(config.lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, lora)


def setup_run(config: GRPOConfig, num_rows: int, resume_from: Path | None) -> RunState:
    device = resolve_device(config)
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)  # process-wide: a worker runs one job at a time
    torch.manual_seed(config.seed)  # LoRA init and dropout draw from the global stream
    info: dict[str, Any] = {}
    state: dict[str, Any] = {}
    if resume_from is not None:
        state, info = load_trainer_state(resume_from)
        _check_same_run(config, GRPOConfig.from_dict(info["config"]))
    model = build_policy(config, device, resume_from)
    # The checkpoint carries its tokenizer; a fresh run reads the source's.
    tokenizer = (
        load_tokenizer(str(resume_from)) if resume_from else load_tokenizer(model_path(config), config.model_revision)
    )
    synced_reference = resume_from / "reference" if resume_from and (resume_from / "reference").is_dir() else None
    reference = load_reference(config, device, source=str(synced_reference) if synced_reference else None)
    parameters = trainable_parameters(model)
    optimizer, scheduler = build_optimizer(config, parameters)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    order = PromptOrder(num_rows, config.seed)
    if resume_from is not None:
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        else:  # a multi-device checkpoint: AdamW state in torch.distributed.checkpoint shards
            from workers.engine.parallel_state import load_sharded_optimizer

            load_sharded_optimizer(model, optimizer, resume_from)
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["rng"]["sampling"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        order.cursor = int(info["data_cursor"])
    return RunState(
        model=model,
        tokenizer=tokenizer,
        reference=reference,
        parameters=parameters,
        optimizer=optimizer,
        scheduler=scheduler,
        order=order,
        generator=generator,
        device=device,
        step=int(info.get("step", 0)),
    )


def save_run(run: RunState, config: GRPOConfig, work_dir: Path, metrics: dict[str, float]) -> Path:
    rng = {"sampling": run.generator.get_state(), "torch": torch.get_rng_state()}
    if run.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(run.device)
    synced = run.reference if config.ref_model_sync_steps is not None else None
    return save_checkpoint(
        work_dir,
        run.step,
        model=run.model,
        tokenizer=run.tokenizer,
        reference=synced,
        trainer_state={
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "rng": rng,
        },
        info={"data_cursor": run.order.cursor, "config": config.to_dict(), "metrics": metrics},
    )


def load_checkpoint_model(
    checkpoint: Path, *, overrides: dict[str, Any] | None = None, device: str | None = None
) -> tuple[nn.Module, PreTrainedTokenizerBase, GRPOConfig, int]:
    """(model in eval mode, tokenizer, config with overrides, step) of a saved checkpoint."""
    _, info = load_trainer_state(checkpoint)
    config = GRPOConfig.from_dict({**info["config"], **(overrides or {}), **({"device": device} if device else {})})
    model = build_policy(config, resolve_device(config), checkpoint).eval()
    return model, load_tokenizer(str(checkpoint)), config, int(info["step"])


def _check_same_run(config: GRPOConfig, saved: GRPOConfig) -> None:
    changed = [
        f.name
        for f in fields(GRPOConfig)
        if f.name not in RESUMABLE_CHANGES and getattr(config, f.name) != getattr(saved, f.name)
    ]
    if changed:
        raise ValueError(
            f"resume_from was saved with different settings for {changed}; resume with the "
            "checkpoint's settings (only max_steps, checkpoint, eval and logging knobs may change)"
        )
