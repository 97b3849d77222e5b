"""The reproducibility manifest written next to every checkpoint (manifest.json): what produced it.

Built once per worker run (hashing the base weights is the expensive part) and stamped with the step at
each checkpoint. `POST /v1/jobs {"reproduce": ...}` resubmits its `spec`; on CPU that run's metrics equal
the original's exactly, because everything the run depends on is in the spec (seed included) and the
hashes say whether the inputs are still the same.
"""

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from app.schemas.job import JobSpec
from app.schemas.reward_resource import RewardRef
from app.services.manifest import MANIFEST_FILE, canonical_hash
from workers.engine.config import GRPOConfig
from workers.engine.model import model_path

PACKAGES = ("torch", "transformers", "peft", "grpo-service")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".json", ".model", ".txt")  # weights, config, tokenizer


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def model_files(source: str) -> dict[str, str]:
    """Relative path -> hash of a local model directory's files; {} for a hub id (its revision pins it)."""
    root = Path(source)
    if not root.is_dir():
        return {}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    return {str(p.relative_to(root)): file_hash(p) for p in files}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def reward_entries(spec: JobSpec) -> list[dict[str, Any]]:
    """Each reward component: its stored definition's id and pinned version when it is one, and a hash of
    the exact definition that ran."""
    entries = []
    for reward in spec.rewards:
        body = reward.model_dump(mode="json")
        if isinstance(reward, RewardRef):
            entries.append(
                {"reward_id": str(reward.reward_id), "version": reward.version, "name": reward.name}
                | {"hash": canonical_hash(body.get("resolved"))}
            )
        else:
            entries.append({"type": body.get("type"), "name": body.get("name"), "hash": canonical_hash(body)})
    return entries


def device_kind(config: GRPOConfig) -> str:
    if config.device == "auto":
        return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
    return config.device


def base_manifest(spec: JobSpec, rows: list[dict[str, Any]], config: GRPOConfig) -> dict[str, Any]:
    """Everything but the step. `config.model_source` is what the run loads (init_from already applied)."""
    source = model_path(config)
    return {
        "spec": spec.model_dump(mode="json"),
        "dataset": {
            "hash": canonical_hash(rows),
            "rows": len(rows),
            "dataset_id": str(spec.dataset.dataset_id) if spec.dataset.dataset_id else None,
        },
        "rewards": reward_entries(spec),
        "base_model": {
            "source": spec.model.source,
            "revision": spec.model.revision,
            "init_from": spec.init_from.model_dump(mode="json") if spec.init_from else None,
            "files": model_files(source),
        },
        "seed": spec.grpo.seed,
        "packages": package_versions(),
        "device": device_kind(config),
        "ranks": torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1,
    }


def write_manifest(checkpoint_dir: Path, base: dict[str, Any], step: int) -> dict[str, Any]:
    manifest = {"object": "checkpoint.manifest", "step": step, **base}
    (checkpoint_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest
