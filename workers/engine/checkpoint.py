"""Checkpoints that resume a run exactly and never look complete when they are not.

Layout of `<work_dir>/checkpoint-<step:06d>/`:

  config.json, model.safetensors, generation_config.json   the policy (save_pretrained; loads with stock
                                                           AutoModelForCausalLM.from_pretrained)
  adapter_config.json, adapter_model.safetensors           instead of the above for LoRA runs (peft)
  tokenizer.json, tokenizer_config.json, ...               the tokenizer (save_pretrained)
  reference/                                               the reference model, only when it is synced
  trainer_state.pt                                         optimiser, scheduler, every RNG state (torch.save)
  trainer_state.json                                       step, data cursor, run config, last step's metrics
  COMPLETE                                                 marker written last: file names and sizes

A checkpoint is written into `.tmp-checkpoint-<step>-<pid>/`, every file is fsynced, the marker is
written and fsynced last, and only then is the directory renamed into place (atomic on POSIX). A crash
at any point leaves either no `checkpoint-*` directory or a complete one; `latest_checkpoint` also
checks the marker's inventory, so a directory copied or synced partially is never picked.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

PREFIX = "checkpoint-"
MARKER = "COMPLETE"
STATE_PT = "trainer_state.pt"
STATE_JSON = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dir(work_dir: Path, step: int) -> Path:
    return Path(work_dir) / f"{PREFIX}{step:06d}"


def is_complete(path: Path) -> bool:
    """True when the marker exists and every file it lists is present with its recorded size."""
    marker = Path(path) / MARKER
    try:
        inventory = json.loads(marker.read_text())["files"]
        return all((Path(path) / name).stat().st_size == size for name, size in inventory.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def list_checkpoints(work_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under `work_dir`, oldest first, as (step, path)."""
    found = []
    if Path(work_dir).is_dir():
        for entry in Path(work_dir).iterdir():
            match = _NAME.match(entry.name)
            if match and entry.is_dir() and is_complete(entry):
                found.append((int(match.group(1)), entry))
    return sorted(found)


def latest_checkpoint(work_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step, or None (temp and partial directories are ignored)."""
    checkpoints = list_checkpoints(work_dir)
    return checkpoints[-1][1] if checkpoints else None


def save_checkpoint(
    work_dir: Path,
    step: int,
    *,
    model: torch.nn.Module,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    info: dict[str, Any],
    reference: torch.nn.Module | None = None,
) -> Path:
    """Write checkpoint `step` atomically and return its final path.

    trainer_state: tensors and plain containers (optimizer, scheduler, rng) for torch.save;
    info: JSON-ready description (step, data cursor, config, metrics).
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    staging = work_dir / f".tmp-{PREFIX}{step:06d}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    if reference is not None:
        reference.save_pretrained(staging / "reference")
    torch.save(trainer_state, staging / STATE_PT)
    (staging / STATE_JSON).write_text(json.dumps({**info, "step": step, "saved_at": time.time()}, indent=2))
    inventory = _fsync_tree(staging)
    _write_synced(staging / MARKER, json.dumps({"step": step, "files": inventory}, indent=2))
    _fsync_dir(staging)
    final = checkpoint_dir(work_dir, step)
    if final.exists():  # re-running a step after a resume: replace the older copy
        stale = work_dir / f".old-{final.name}-{os.getpid()}"
        os.replace(final, stale)
        os.replace(staging, final)
        shutil.rmtree(stale, ignore_errors=True)
    else:
        os.replace(staging, final)
    _fsync_dir(work_dir)
    return final


def prune_checkpoints(work_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the `keep_last` most recent complete checkpoints; returns the deleted paths."""
    doomed = [path for _, path in list_checkpoints(work_dir)[:-keep_last]]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def remove_stale_temporaries(work_dir: Path) -> None:
    """Remove leftovers of checkpoint writes that crashed (called before training starts)."""
    if Path(work_dir).is_dir():
        for entry in Path(work_dir).iterdir():
            if entry.is_dir() and (entry.name.startswith(f".tmp-{PREFIX}") or entry.name.startswith(".old-")):
                shutil.rmtree(entry, ignore_errors=True)


def load_trainer_state(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(torch state, JSON info) of a complete checkpoint."""
    if not is_complete(path):
        raise FileNotFoundError(f"{path} is not a complete checkpoint (missing or partial {MARKER} marker)")
    state = torch.load(Path(path) / STATE_PT, map_location="cpu", weights_only=True)
    info = json.loads((Path(path) / STATE_JSON).read_text())
    return state, info


def _fsync_tree(root: Path) -> dict[str, int]:
    inventory = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
            inventory[path.relative_to(root).as_posix()] = path.stat().st_size
        elif path.is_dir():
            _fsync_dir(path)
    return inventory


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
