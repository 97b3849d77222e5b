"""From the API's model spec to files on this machine, and from a request to prompt token ids.

The API decides *which* model a caller may use (tenancy, the operator's list) and sends a spec; the
worker only finds the files: a base model by name ('tiny-demo' is built locally, anything else is a
local directory), a checkpoint by its storage key (read in place from a local store, downloaded once
into the model cache from S3).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.core.config import Settings
from app.core.storage import LocalStore, make_store
from workers.engine.config import GRPOConfig
from workers.engine.model import model_path
from workers.engine.tiny import TINY_DEMO, build_tiny_model
from workers.inference.batcher import RequestError
from workers.inference.cache import ModelSource, lora_base_path


class ModelSpec(BaseModel):
    id: str = Field(..., description="The public model id, for messages.")
    kind: Literal["base", "checkpoint"]
    source: str | None = Field(None, description="base: 'tiny-demo' or a local model directory.")
    storage_key: str | None = Field(None, description="checkpoint: where it is stored.")
    is_adapter: bool = False

    @property
    def cache_key(self) -> str:
        return f"base:{self.source}" if self.kind == "base" else f"ckpt:{self.storage_key}"


def _base_path(settings: Settings, source: str) -> Path:
    if source == TINY_DEMO:
        return build_tiny_model(settings.model_cache_dir)
    return Path(source)


def _checkpoint_dir(settings: Settings, storage_key: str) -> Path:
    store = make_store(settings)
    if isinstance(store, LocalStore):
        return store.root / storage_key
    target = settings.model_cache_dir / "inference" / hashlib.sha256(storage_key.encode()).hexdigest()[:24]
    if not (target / "COMPLETE").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
        store.get_dir(storage_key, staging)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    return target


def _config_source(settings: Settings, saved: dict[str, Any]) -> Path:
    config = GRPOConfig.from_dict({**saved, "model_cache_dir": str(settings.model_cache_dir)})
    return Path(model_path(config))


def resolve(settings: Settings, spec: ModelSpec) -> ModelSource:
    # Full models are cached under their resolved path, so a base named by the API and the same base
    # under a LoRA checkpoint share one copy; adapters under their storage key.
    if spec.kind == "base":
        path = _base_path(settings, spec.source or "").resolve()
        return ModelSource(key=str(path), path=path)
    path = _checkpoint_dir(settings, spec.storage_key or "")
    if not (path / "COMPLETE").is_file():
        raise RequestError(404, f"the files of model {spec.id!r} are gone", param="model", code="model_not_found")
    if spec.is_adapter:
        base = lora_base_path(path, lambda c: _config_source(settings, c)).resolve()
        return ModelSource(key=spec.cache_key, path=path, base=base)
    return ModelSource(key=str(path.resolve()), path=path)


def render_messages(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    """The chat template's rendering, ready for the assistant's turn. A tokenizer without a template (the
    tiny demo model, models trained on plain prompts) gets the messages' contents joined by newlines,
    so a model trained on prompt P answers [{"role": "user", "content": P}] as it answers P."""
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    text = "\n".join(str(m.get("content") or "") for m in messages)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def render_prompt(tokenizer: Any, prompt: str) -> list[int]:
    return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
