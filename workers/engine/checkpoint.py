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

A full disk: before writing, the free space of `work_dir` is checked against the checkpoint's expected
size (its tensors plus a margin); a write that still runs out of space (another process filled the disk)
removes its staging directory. Either way StorageFull is raised, naming the path and its free space, and
the previous complete checkpoint is untouched (nothing is pruned or renamed before a write completes).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from workers.contract import JobFailure

logger = logging.getLogger(__name__)

PREFIX = "checkpoint-"
MARKER = "COMPLETE"
STATE_PT = "trainer_state.pt"
STATE_JSON = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")
# Room asked for beyond the tensors: tokenizer files, JSON, safetensors headers, filesystem overhead.
SPACE_MARGIN_BYTES = 16 * 2**20
SPACE_MARGIN_FRACTION = 0.05


class StorageFull(JobFailure):
    """No space left to write a checkpoint (checked before writing, or ENOSPC while writing)."""

    code = "storage_full"

    def __init__(self, path: Path, free_bytes: int, needed_bytes: int | None) -> None:
        self.path, self.free_bytes, self.needed_bytes = Path(path), free_bytes, needed_bytes
        need = f"; the checkpoint needs about {_mib(needed_bytes)}" if needed_bytes else ""
        super().__init__(f"no space left on the device of {path}: {_mib(free_bytes)} free{need}")


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


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
    needed = expected_checkpoint_bytes(model, trainer_state, reference)
    free = shutil.disk_usage(work_dir).free
    if free < needed:
        raise StorageFull(work_dir, free, needed)
    staging = work_dir / f".tmp-{PREFIX}{step:06d}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write_staging(staging, step, model, tokenizer, trainer_state, info, reference)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)  # a partial write must not keep the disk full
        if is_out_of_space(error):
            raise StorageFull(work_dir, shutil.disk_usage(work_dir).free, needed) from error
        raise
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


def _write_staging(
    staging: Path,
    step: int,
    model: Any,  # anything with save_pretrained: a transformers or peft model
    tokenizer: Any,
    trainer_state: dict[str, Any],
    info: dict[str, Any],
    reference: Any | None,
) -> None:
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


def expected_checkpoint_bytes(
    model: Any, trainer_state: dict[str, Any], reference: torch.nn.Module | None = None
) -> int:
    """About what save_checkpoint writes: the saved weights, the optimiser state's tensors, a margin."""
    tensors = _tensor_bytes(trainer_state)
    for module in (model, reference):
        if isinstance(module, torch.nn.Module):
            # A LoRA model saves only its adapters: its trainable parameters.
            adapters_only = hasattr(module, "peft_config")
            tensors += sum(
                p.numel() * p.element_size() for p in module.parameters() if p.requires_grad or not adapters_only
            )
    return int(tensors * (1 + SPACE_MARGIN_FRACTION)) + SPACE_MARGIN_BYTES


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(item) for item in value)
    return 0


def is_out_of_space(error: BaseException) -> bool:
    """ENOSPC/EDQUOT, or torch.save's zip writer failing on a full disk ('unexpected pos', 'file write failed')."""
    for cause in _chain(error):
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(cause, RuntimeError) and any(
            sign in str(cause) for sign in ("unexpected pos", "file write failed", "No space left")
        ):
            return True
    return False


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


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
