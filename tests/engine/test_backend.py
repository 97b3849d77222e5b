"""The fast-path seam (workers/engine/backend.py): GRPOConfig.fast_paths picks the kernels or plain
transformers once per run, and a run with either samples the same completions and learns alike."""

from __future__ import annotations

import pytest

from workers.engine import kernels, train
from workers.engine.backend import Backend

from .conftest import RecordingSink, digit_rows, make_config, repeat_reward


def _count_kernel_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"rollout_cache": 0, "decode_step": 0, "head_logprobs": 0}
    for name in calls:
        original = getattr(kernels.Kernels, name)

        def counted(self, *args, _name=name, _original=original):
            calls[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(kernels.Kernels, name, counted)
    return calls


def test_fast_paths_switch_the_kernels_for_the_whole_run_and_change_no_result(tmp_path, model_cache, monkeypatch):
    calls = _count_kernel_calls(monkeypatch)
    sinks = {}
    for fast in (True, False):
        sinks[fast] = RecordingSink()
        config = make_config(model_cache, max_steps=2, num_iterations=2, beta=0.04, eval_every=1, fast_paths=fast)
        train(config, digit_rows(), repeat_reward, sinks[fast], work_dir=tmp_path / str(fast), eval_rows=digit_rows())
        if fast:  # every rollout (training and eval) and every scoring pass went through the kernels
            assert all(count > 0 for count in calls.values()), calls
            seen = dict(calls)
    assert calls == seen, "fast_paths=False must not touch a kernel"
    assert isinstance(kernels.Kernels(), Backend)
    fast_run, plain_run = (sinks[f] for f in (True, False))
    # The same tokens (so the same rewards), and losses equal up to the kernels' float32 rounding.
    assert [s.completion for r in fast_run.steps for s in r.samples] == [
        s.completion for r in plain_run.steps for s in r.samples
    ]
    for ours, theirs in zip(fast_run.run_metrics(), plain_run.run_metrics(), strict=True):
        assert ours["reward/mean"] == theirs["reward/mean"]
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-4, abs=1e-6)
