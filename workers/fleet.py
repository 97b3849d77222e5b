"""What this worker offers and which queues it consumes (see app/services/routing.py for the API side).

A worker of a declared class (GRPO_WORKER_CLASS) consumes its class's queue, the queues of the declared
classes it covers (a job that fits a smaller class fits it too) and the default `grpo` queue (evaluations,
merges, and jobs submitted before classes were declared). A worker without a class offers what it
detects: its CUDA devices, else the CPU with one device per core.

    python -m workers.fleet queues     # the comma-separated --queues list for `celery worker`
"""

from __future__ import annotations

import argparse
import os

from app.core.config import Settings
from app.schemas.resources import ResourcesSpec, WorkerClass
from app.services.routing import DEFAULT_QUEUE


def detected_offer() -> WorkerClass:
    try:
        import torch

        if torch.cuda.is_available():
            memory = torch.cuda.get_device_properties(0).total_memory / 1e9
            return WorkerClass(name="detected", accelerator="cuda", devices=torch.cuda.device_count(), memory_gb=memory)
    except ImportError:  # a worker image without torch runs no training anyway
        pass
    return WorkerClass(name="detected", accelerator="cpu", devices=max(1, min(os.cpu_count() or 1, 64)))


def worker_offer(settings: Settings) -> WorkerClass:
    if settings.worker_class is not None:
        return next(c for c in settings.worker_classes if c.name == settings.worker_class)
    return detected_offer()


def worker_queues(settings: Settings) -> list[str]:
    if settings.worker_class is None:
        return [DEFAULT_QUEUE]
    own = worker_offer(settings)
    return [DEFAULT_QUEUE] + [c.queue for c in settings.worker_classes if own.covers(c)]


def fits_here(resources: ResourcesSpec, settings: Settings) -> bool:
    return worker_offer(settings).fits(resources)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["queues"])
    parser.parse_args(argv)
    print(",".join(worker_queues(Settings())))  # noqa: T201 - the command's output


if __name__ == "__main__":
    main()
