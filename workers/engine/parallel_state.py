"""Building, checkpointing and resuming a multi-rank run.

A multi-rank checkpoint has the layout of checkpoint.py (so everything that reads checkpoints, the
service's storage and stock `from_pretrained` included, works unchanged), written by rank 0:

  config.json, model.safetensors, tokenizer files   the consolidated policy (FSDP shards gathered)
  trainer_state.pt                                  scheduler and RNG states; no optimiser state
  trainer_state.json                                step, data cursor, config, metrics, world size, strategy
  sharded/                                          model + AdamW state, torch.distributed.checkpoint
                                                    (every rank writes its own shards)

torch.distributed.checkpoint stores tensors by parameter name with their global shapes, so it loads
into any number of ranks: a run saved on 2 ranks resumes on 1 (train.py's path, see state.py) or on 4,
and a one-process checkpoint (optimiser state in trainer_state.pt) resumes on N.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

from workers.engine import distributed as D
from workers.engine.checkpoint import PREFIX, save_checkpoint
from workers.engine.config import GRPOConfig
from workers.engine.model import resolve_dtype
from workers.engine.optim import build_optimizer
from workers.engine.state import RunState, setup_run

SHARDED = "sharded"


def setup_parallel(config: GRPOConfig, num_rows: int, resume_from: Path | None, world: D.World) -> RunState:
    """state.setup_run on every rank (the same weights and optimiser state everywhere), then, for fsdp,
    the policy (and reference) sharded and the optimiser rebuilt on the shards with its state moved over."""
    config = GRPOConfig.from_dict({**config.to_dict(), "device": D.device_for(world, config.device)})
    run = setup_run(config, num_rows, resume_from)
    if world.strategy != "fsdp" or not world.active:
        return run
    # Full, name-keyed optimiser state before sharding (empty on a fresh run); sharded again below.
    state = get_optimizer_state_dict(run.model, run.optimizer) if resume_from is not None else None
    # Every FSDP forward and backward of a layer is a collective, so all ranks must run the same number.
    # The scorer's shared-prompt path runs one forward per length bucket, and the buckets differ between
    # ranks (their completions differ): with activation checkpointing it takes the plain path, one forward
    # (and one backward) per micro-batch, the same count on every rank. The reference (no_grad) is routed
    # the same way; checkpointing is inactive outside training, so there it only picks the path.
    for model in (run.model, run.reference):
        if model is not None:  # idempotent when the config already asked for it
            hf_model: Any = model  # a transformers model (nn.Module types its methods loosely)
            hf_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    bf16_on_gpu = run.device.type == "cuda" and resolve_dtype(config, run.device) == torch.bfloat16
    mp_dtype = torch.bfloat16 if bf16_on_gpu else None
    D.shard_model(run.model, mp_dtype)
    if run.reference is not None:
        D.shard_model(run.reference, mp_dtype)
    run.parameters = [p for p in run.model.parameters() if p.requires_grad]
    optimizer, scheduler = build_optimizer(config, run.parameters)
    scheduler.load_state_dict(run.scheduler.state_dict())
    if state is not None:
        set_optimizer_state_dict(run.model, optimizer, state, options=StateDictOptions(full_state_dict=True))
    run.optimizer, run.scheduler = optimizer, scheduler
    return run


def load_sharded_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer, checkpoint: Path) -> None:
    """Load a multi-rank checkpoint's AdamW state into `optimizer` of an unsharded `model` (any number of
    ranks, or one process without a process group)."""
    state = get_optimizer_state_dict(model, optimizer)
    dcp_load({"optimizer": state}, checkpoint_id=str(Path(checkpoint) / SHARDED))
    set_optimizer_state_dict(model, optimizer, state)


class _Export:
    """What save_checkpoint calls save_pretrained on: writes the consolidated weights (`state_dict`
    gathered from the shards, or the replica) and moves the ranks' sharded state in beside them, so
    the COMPLETE marker written afterwards covers both."""

    def __init__(self, model: Any, state_dict: dict[str, Any] | None, sharded: Path) -> None:  # a PreTrainedModel
        self.model, self.state_dict, self.sharded = model, state_dict, sharded

    def save_pretrained(self, directory: Path) -> None:
        if self.state_dict is None:
            self.model.save_pretrained(directory)
        else:
            self.model.save_pretrained(directory, state_dict=self.state_dict)
        os.replace(self.sharded, Path(directory) / SHARDED)


def save_parallel(
    world: D.World, run: RunState, config: GRPOConfig, work_dir: Path, metrics: dict[str, float]
) -> Path | None:
    """Write checkpoint run.step (every rank takes part); returns its path on rank 0, None elsewhere."""
    work_dir = Path(work_dir)
    staging = work_dir / f".tmp-{PREFIX}{run.step:06d}-{SHARDED}"  # removed as stale if a crash leaves it
    if world.is_main:
        shutil.rmtree(staging, ignore_errors=True)
    D.barrier(world)
    dcp_save(
        {"model": get_model_state_dict(run.model), "optimizer": get_optimizer_state_dict(run.model, run.optimizer)},
        checkpoint_id=str(staging),
    )
    full = None
    if world.strategy == "fsdp" and world.active:  # collective: every rank sends its shards to rank 0
        full = get_model_state_dict(run.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    path = None
    synced = run.reference if config.ref_model_sync_steps is not None else None
    with D.gathered(synced) if synced is not None else contextlib.nullcontext():  # collective under fsdp
        if world.is_main:
            path = _save_main(run, config, work_dir, metrics, world, full, staging, synced)
    D.barrier(world)
    return path


def _save_main(
    run: RunState,
    config: GRPOConfig,
    work_dir: Path,
    metrics: dict[str, float],
    world: D.World,
    full: dict[str, Any] | None,
    staging: Path,
    synced: nn.Module | None,
) -> Path:
    rng = {"sampling": run.generator.get_state(), "torch": torch.get_rng_state()}
    return save_checkpoint(
        work_dir,
        run.step,
        model=_Export(run.model, full, staging),  # type: ignore[arg-type]
        tokenizer=run.tokenizer,
        reference=synced,
        trainer_state={"scheduler": run.scheduler.state_dict(), "rng": rng},
        info={
            "data_cursor": run.order.cursor,
            "config": config.to_dict(),
            "metrics": metrics,
            "world_size": world.size,
            "strategy": world.strategy,
        },
    )
