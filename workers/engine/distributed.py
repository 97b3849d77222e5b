"""torch.distributed plumbing for multi-device jobs: the process group, collectives, and the two
parallel strategies.

- `World` is one rank's view of the job (rank, world size, device). World size 1 needs no process
  group at all: every collective below is then the identity, so the rank-invariant loop
  (parallel.py) also runs in one process, which is what a multi-rank run is compared against.
- ddp: every rank holds the whole model; after the local backward the gradients are summed with one
  all-reduce per parameter dtype (the reduction DistributedDataParallel's reducer performs). The
  DDP wrapper itself is not used: the scorer (logprobs.py) calls the decoder and the head directly and
  backpropagates one length bucket at a time, while DDP hooks its reducer on the wrapper's forward and
  expects one backward per forward.
- fsdp: FSDP2 `fully_shard` on every decoder layer, then on the decoder, whose forward the scorer calls
  (so the decoder is the FSDP root). The input embedding is left out of the shards (`ignored_params`):
  small models tie it to the LM head, which the scorer uses outside the decoder's forward, and sharding
  it would untie the two. It and an untied head stay replicated, with their gradients all-reduced as
  under ddp. Generation runs with every shard gathered (`gathered`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

STRATEGIES = ("ddp", "fsdp")
# Default strategy from the model size: see app/schemas/resources.py (FSDP_ABOVE_PARAMETERS).
FSDP_ABOVE_PARAMETERS = 1_000_000_000


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    strategy: str = "ddp"  # 'ddp' | 'fsdp'

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when a process group exists (several ranks); False for the one-process form."""
        return self.size > 1


def init_world(strategy: str, accelerator: str | None, timeout_s: float = 1800) -> World:
    """Join the process group torchrun set up (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT in the
    environment): NCCL on CUDA, gloo on CPU. Without WORLD_SIZE > 1, the one-process World."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r}: choose one of {STRATEGIES}")
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if size > 1 and not dist.is_initialized():
        cuda = accelerator == "cuda" or (accelerator is None and torch.cuda.is_available())
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s))
    return World(rank=rank, size=size, local_rank=local_rank, strategy=strategy)


def device_for(world: World, configured: str) -> str:
    """The rank's device string: 'cuda:<local rank>' on CUDA, the configured one otherwise."""
    if configured == "cuda" or (configured == "auto" and torch.cuda.is_available()):
        return f"cuda:{world.local_rank}"
    return configured


def choose_strategy(requested: str | None, num_parameters: int) -> str:
    """The documented default: fsdp above FSDP_ABOVE_PARAMETERS parameters, ddp below."""
    if requested is not None:
        return requested
    return "fsdp" if num_parameters > FSDP_ABOVE_PARAMETERS else "ddp"


def prompt_generator(seed: int, step: int, position: int, device: torch.device) -> torch.Generator:
    """The sampling stream of one prompt group: a pure function of (seed, step, position of the prompt
    in the step's global prompt list), so the group draws the same completions on whichever rank, in
    whichever world size, it is generated."""
    digest = hashlib.blake2b(f"{seed}:{step}:{position}".encode(), digest_size=8).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest, "little") >> 1)


# --- collectives (identity in the one-process form) ---------------------------------------------


def all_reduce_sum(world: World, values: list[float]) -> list[float]:
    """Elementwise sum over ranks of a few floats (token counts, metric sums), in float64."""
    if not world.active or not values:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_comm_device(world))
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_reduce_max(world: World, value: float) -> float:
    if not world.active:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=_comm_device(world))
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor)


def gather_to_main(world: World, obj: Any) -> list[Any] | None:
    """Every rank's `obj` on rank 0 (in rank order), None elsewhere. For small things only."""
    if not world.active:
        return [obj]
    gathered: list[Any] | None = [None] * world.size if world.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def broadcast_from_main(world: World, obj: Any) -> Any:
    if not world.active:
        return obj
    box = [obj if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()


def _comm_device(world: World) -> torch.device:
    return torch.device("cuda", world.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")


# --- strategies ---------------------------------------------------------------------------------


def shard_model(model: nn.Module, mp_dtype: torch.dtype | None = None) -> None:
    """FSDP2 in place: each decoder layer, then the decoder (see the module docstring)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    decoder: Any = _decoder(model)  # a transformers decoder: layers and input embeddings typed loosely
    kwargs: dict[str, Any] = {}
    if mp_dtype is not None:  # CUDA bf16: compute in bf16, reduce gradients in fp32
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=mp_dtype, reduce_dtype=torch.float32)
    for layer in decoder.layers:
        fully_shard(layer, **kwargs)
    fully_shard(decoder, ignored_params={decoder.get_input_embeddings().weight}, **kwargs)


def _decoder(model: nn.Module) -> nn.Module:
    get_base = getattr(model, "get_base_model", None)
    base: Any = get_base() if callable(get_base) else model
    decoder: nn.Module = base.get_decoder()
    return decoder


def fsdp_modules(model: nn.Module) -> list[nn.Module]:
    from torch.distributed.fsdp import FSDPModule

    return [module for module in model.modules() if isinstance(module, FSDPModule)]


@contextlib.contextmanager
def gathered(model: nn.Module) -> Iterator[None]:
    """Every FSDP shard gathered for the duration of the block (generation, evaluation, export), so
    code that reads weights directly (the lean decode step) sees plain tensors. No-op without FSDP."""
    modules = fsdp_modules(model)
    for module in modules:
        module.set_reshard_after_forward(False, recurse=False)  # type: ignore[operator]
        module.unshard()  # type: ignore[operator]
    try:
        yield
    finally:
        for module in modules:
            module.reshard()  # type: ignore[operator]
            module.set_reshard_after_forward(True, recurse=False)  # type: ignore[operator]


def is_sharded(param: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(param, DTensor)


def sync_gradients(world: World, parameters: list[nn.Parameter]) -> None:
    """Make every rank's gradient the sum over ranks of the local ones (each rank's loss is its share of
    the global loss, so the sum is the one-process gradient). Replicated parameters: one all-reduce per
    dtype over the flattened gradients. FSDP shards were reduce-scattered as a mean during backward:
    scaled back to the sum."""
    if not world.active:
        return
    replicated: dict[torch.dtype, list[torch.Tensor]] = {}
    for param in parameters:
        if param.grad is None:
            continue
        if is_sharded(param):
            param.grad.mul_(world.size)
        else:
            replicated.setdefault(param.grad.dtype, []).append(param.grad)
    for grads in replicated.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()


def clip_and_step(
    world: World,
    parameters: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    max_grad_norm: float | None,
) -> float:
    """optim.clip_and_step for synced gradients, some of them sharded: the global norm counts each
    shard once (its local squares all-reduced) and each replicated gradient once."""
    sharded_sq = replicated_sq = 0.0
    for param in parameters:
        if param.grad is None:
            continue
        if is_sharded(param):
            sharded_sq += float(param.grad.to_local().double().pow(2).sum())  # type: ignore[attr-defined]
        else:
            replicated_sq += float(param.grad.double().pow(2).sum())
    norm = (all_reduce_sum(world, [sharded_sq])[0] + replicated_sq) ** 0.5
    if max_grad_norm is not None and norm > max_grad_norm:
        scale = max_grad_norm / (norm + 1e-6)  # as torch.nn.utils.clip_grad_norm_
        for param in parameters:
            if param.grad is not None:
                param.grad.mul_(scale)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
