"""Load the policy (and, for beta > 0, the reference) through transformers' from_pretrained.

Every source goes through the same path: 'tiny-demo' is first built into a local directory
(workers/engine/tiny.py), a local directory is read as is, anything else is a hub id. LoRA wraps the
policy with peft adapters; the reference is then the same module with adapters disabled, so there is
no second copy of the weights in memory.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from workers.contract import JobFailure
from workers.engine.config import GRPOConfig
from workers.engine.tiny import TINY_DEMO, build_tiny_model

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "grpo-service"


def resolve_device(config: GRPOConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def resolve_dtype(config: GRPOConfig, device: torch.device) -> torch.dtype:
    """Compute dtype: fp32 on CPU (bf16 matmuls are slow there and fp32 keeps runs bitwise
    reproducible), bf16 on GPU. Trainable weights and optimiser state stay fp32 either way (mixed
    precision through autocast), so small updates are not rounded away."""
    if config.precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return torch.bfloat16 if config.precision == "bf16" else torch.float32


def autocast(config: GRPOConfig, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The forward-pass precision context: bf16 autocast when the compute dtype is bf16."""
    if resolve_dtype(config, device) == torch.bfloat16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def model_path(config: GRPOConfig) -> str:
    """The from_pretrained argument for the configured source (builds 'tiny-demo' on first use)."""
    if config.model_source == TINY_DEMO:
        return str(build_tiny_model(config.model_cache_dir or DEFAULT_CACHE_DIR))
    return config.model_source


class ModelLoadError(JobFailure, RuntimeError):
    """The model or tokenizer cannot be loaded; the service reports it as a failed job naming model.source."""

    code = "model_load_failed"
    param = "model.source"


@contextlib.contextmanager
def _loading(what: str, source: str, revision: str | None) -> Iterator[None]:
    try:
        yield
    except (OSError, ValueError) as error:  # what from_pretrained raises for missing or broken models
        at = f" at revision {revision!r}" if revision else ""
        raise ModelLoadError(f"could not load the {what} of {source!r}{at}: {error}") from error


def load_tokenizer(source: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    with _loading("tokenizer", source, revision):
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer of {source!r} has no eos token: completions could never end")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is always masked, any id will do
    return tokenizer


def load_policy(config: GRPOConfig, device: torch.device, *, source: str | None = None) -> nn.Module:
    """The policy (fp32 weights) on `device`; `source` overrides the configured one (a checkpoint)."""
    path = source or model_path(config)
    revision = None if source else config.model_revision
    with _loading("model", path, revision):
        # Any: transformers types from_pretrained's model too loosely for its own .to() and methods
        model: Any = AutoModelForCausalLM.from_pretrained(path, revision=revision, dtype=torch.float32)
        model.to(device)
    if config.gradient_checkpointing:
        # Non-reentrant: works although the inputs do not require grad (no enable_input_require_grads).
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False  # training forwards never need the KV cache; rollouts pass their own
    return cast(nn.Module, model)


@contextlib.contextmanager
def reference_mode(reference: nn.Module | None, policy: nn.Module) -> Iterator[nn.Module]:
    """Yield the module that computes reference log-probs: a separate frozen model, or, for LoRA,
    the policy itself with its adapters disabled for the duration of the block."""
    if reference is not None:
        yield reference
        return
    with policy.disable_adapter():  # type: ignore[operator]
        yield policy


def load_reference(config: GRPOConfig, device: torch.device, *, source: str | None = None) -> nn.Module | None:
    """The frozen reference when beta > 0: loaded from the original source (not copied from the policy,
    which may be a resumed one), or from `source` (a checkpoint's synced reference). None when beta == 0
    (nothing is loaded at all) or with LoRA (the policy with adapters disabled is the reference)."""
    if config.beta == 0.0 or config.lora is not None:
        return None
    path = source or model_path(config)
    revision = None if source else config.model_revision
    # float32 like the policy, whatever the precision: under bf16 autocast a bf16-weight model is not the
    # same computation as fp32 weights autocast to bf16 (norms, rotary and softmax run in bf16 there), so a
    # bf16 reference gave KL != 0 at step 0 (mean k3 ~6e-7). The same weights under the same autocast
    # give the policy's own step-0 log-probs; the cost is fp32 weights in memory for the reference.
    reference: nn.Module = AutoModelForCausalLM.from_pretrained(path, revision=revision, dtype=torch.float32)
    reference.to(device).eval().requires_grad_(False)
    return reference


@torch.no_grad()
def sync_reference(reference: nn.Module, policy: nn.Module, alpha: float) -> None:
    """TR-DPO style soft update: ref <- alpha * policy + (1 - alpha) * ref."""
    for ref_param, param in zip(reference.parameters(), policy.parameters(), strict=True):
        ref_param.mul_(1.0 - alpha).add_(param.detach(), alpha=alpha)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [param for param in model.parameters() if param.requires_grad]
