"""Shared fixtures for the reward tests (helpers: tests.utils.rewards)."""

import pytest

from tests.utils.rewards import SETTINGS, SPECS, requires_root, sandbox_pids, specs

# Re-exported for branches that still import these from here; new code imports them from tests.utils.rewards.
__all__ = ["SETTINGS", "SPECS", "requires_root", "sandbox_pids", "specs"]


@pytest.fixture
def no_leaked_sandboxes():
    """Fails the test if sandbox processes outlive it."""
    yield
    assert sandbox_pids() == [], "sandbox processes survived their pool"
