"""Moved to tests.utils.live; re-exported for branches that still import from here."""

from tests.utils.live import TERMINAL, all_metrics, tiny_job, wait_for

__all__ = ["TERMINAL", "all_metrics", "tiny_job", "wait_for"]
