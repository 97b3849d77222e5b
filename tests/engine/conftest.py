"""Shared fixtures: one thread per test, a tiny model built once per session (helpers: tests.utils.engine)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.utils.engine import Cancelled, RecordingSink, digit_rows, gradient_errors, make_config, repeat_reward
from workers.engine import build_tiny_model

# Re-exported for branches that still import these from here; new code imports them from tests.utils.engine.
__all__ = ["Cancelled", "RecordingSink", "digit_rows", "gradient_errors", "make_config", "repeat_reward"]


@pytest.fixture(autouse=True)
def _one_thread():
    # Bitwise comparisons between runs need the same thread count; one thread also plays nice on 2 cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("models")
    build_tiny_model(cache)
    return cache
