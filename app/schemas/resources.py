"""What a job needs to run (`resources`) and what a class of workers offers (the operator's fleet).

A job asks for an accelerator kind and a number of devices; with more than one device the worker
launches one process per device with torch's elastic launcher and trains data-parallel (ddp) or
sharded (fsdp, FSDP2 `fully_shard` per decoder layer). The API routes the job to the queue of a
worker class that can run it (app/services/routing.py).
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from app.schemas.grpo import GRPOHyperparameters

MAX_DEVICES = 64


Accelerator = Literal["cpu", "cuda"]
Strategy = Literal["ddp", "fsdp"]


# The size rule behind strategy=None (documented on the field; workers/engine/distributed.py applies it):
# full fine-tuning with AdamW keeps ~16 bytes per parameter (fp32 weights, gradients, two moments). DDP
# replicates all of it on every device, FSDP divides it by the number of devices; below this many
# parameters the replica fits comfortably on any supported device and DDP is simpler and faster
# (no all-gather before every layer).
FSDP_ABOVE_PARAMETERS = 1_000_000_000


class ResourcesSpec(BaseModel):
    """Where and on how many devices a job runs. The default (one device, any accelerator) is the
    single-process path of a job without this section, unchanged."""

    model_config = ConfigDict(extra="forbid")

    accelerator: Accelerator | None = Field(
        None,
        description="'cpu' or 'cuda'. None (default): any worker takes the job, and it uses CUDA when the worker "
        "has it, else the CPU (the behaviour of a job without resources). With several devices, CUDA ranks talk "
        "over NCCL and CPU ranks over gloo.",
    )
    devices: int = Field(
        1,
        ge=1,
        le=MAX_DEVICES,
        description="Processes (one per device) the job trains on. 1 (default) runs in the worker's own process, "
        "with no distributed overhead. N > 1 splits each step's prompt groups over N ranks (a group never spans "
        "ranks) and computes the same update as one process: sampling depends only on (seed, step, prompt) "
        "and every loss normaliser is global. grpo.prompts_per_step must be a multiple of devices.",
    )
    strategy: Strategy | None = Field(
        None,
        description="'ddp': every rank holds the whole model and optimiser, gradients are all-reduced. 'fsdp': "
        "FSDP2 (`fully_shard` per decoder layer, then the model): weights, gradients and optimiser state are "
        "sharded over the ranks and gathered layer by layer. None (default): fsdp when the model has more than "
        f"{FSDP_ABOVE_PARAMETERS:,} parameters (full training then needs ~16 GB per replica: fp32 weights, "
        "gradients and two AdamW moments), ddp otherwise (simpler, no gather before each layer). "
        "Ignored with one device.",
    )
    memory_gb: float | None = Field(
        None,
        gt=0,
        le=100_000,
        description="Minimum memory per device in GB. Only routing reads it: the job goes to a worker class "
        "that declares at least this much. None (default): any.",
    )

    @property
    def distributed(self) -> bool:
        return self.devices > 1


class WorkerClass(BaseModel):
    """A kind of worker in the fleet (operator setting GRPO_WORKER_CLASSES); each class has its own queue."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$", description="Label, e.g. 'cpu' or 'gpu-a100x8'.")
    accelerator: Accelerator = Field(..., description="What its devices are.")
    devices: int = Field(1, ge=1, le=MAX_DEVICES, description="Devices one worker of the class has.")
    memory_gb: float | None = Field(None, gt=0, description="Memory per device in GB; None: not declared.")

    @property
    def queue(self) -> str:
        return f"grpo.{self.name}"

    def fits(self, resources: ResourcesSpec) -> bool:
        """True when a worker of this class can run a job asking for `resources`."""
        if resources.accelerator is not None and resources.accelerator != self.accelerator:
            return False
        if resources.devices > self.devices:
            return False
        if resources.memory_gb is not None:
            return self.memory_gb is not None and self.memory_gb >= resources.memory_gb
        return True

    def covers(self, other: "WorkerClass") -> bool:
        """True when every job routed to `other` also fits this class (so its workers may drain that queue)."""
        return (
            other.accelerator == self.accelerator
            and other.devices <= self.devices
            and (other.memory_gb is None or (self.memory_gb is not None and self.memory_gb >= other.memory_gb))
        )


def describe(resources: ResourcesSpec) -> str:
    """'2 x cuda (>= 40 GB)' for events and errors."""
    kind = resources.accelerator or "any accelerator"
    memory = f" (>= {resources.memory_gb:g} GB each)" if resources.memory_gb else ""
    return f"{resources.devices} x {kind}{memory}"


def check_fits_spec(resources: ResourcesSpec, grpo: GRPOHyperparameters) -> None:
    """Cross-field rules between resources and the algorithm's knobs (raised as 422s naming resources.devices)."""
    if not resources.distributed:
        return
    if grpo.prompts_per_step % resources.devices:
        raise PydanticCustomError(
            "devices_split",
            "resources.devices ({devices}) must divide grpo.prompts_per_step ({prompts}): each rank trains whole "
            "prompt groups, the same number on every rank",
            {"devices": resources.devices, "prompts": grpo.prompts_per_step},
        )
    if grpo.dynamic_sampling:
        raise PydanticCustomError(
            "devices_dynamic_sampling",
            "grpo.dynamic_sampling is not supported with resources.devices > 1 yet; use one device or turn it off",
        )
    # The multi-rank loop (workers/engine/parallel.py) does not implement these yet: refused, not ignored.
    single_device_only = {
        "steps_per_generation": grpo.steps_per_generation != 1,
        "sampling_correction": grpo.sampling_correction != "off",
        "advantage_baseline": grpo.advantage_baseline != "mean",
    }
    for knob, used in single_device_only.items():
        if used:
            raise PydanticCustomError(
                "devices_unsupported_knob",
                "grpo.{knob} is not supported with resources.devices > 1 yet; use one device or its default",
                {"knob": knob},
            )
