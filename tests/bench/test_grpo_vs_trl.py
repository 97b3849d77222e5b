"""Smoke test of bench/grpo_vs_trl.py: its quick mode runs both trainers end to end (the figures of
so small a run mean nothing and are not checked; the benchmark itself is not run in CI)."""

import json

import pytest

from bench import grpo_vs_trl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def test_quick_mode_runs_both_trainers_and_reports(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert grpo_vs_trl.main(["--quick", "--cache-dir", str(tmp_path / "models"), "--json", str(out)]) == 0
    report = capsys.readouterr().out
    assert "seconds per step (median)" in report and "peak RSS, whole process (MiB)" in report
    data = json.loads(out.read_text())
    assert data["setting"]["preset"] == "smoke" and data["setting"]["matmul_gflops"] > 0
    for trainer in ("engine", "trl"):
        summary = data["summaries"]["0.04"][trainer]
        assert summary["step_s"] > 0 and summary["phases_s"]["generation"] > 0
        assert summary["phases_s"]["reference"] > 0  # beta 0.04: a reference forward ran
        assert summary["peak_rss_mb"] >= summary["rss_after_load_mb"] > 0
        assert 1 <= summary["length_min"] <= summary["length_max"] <= 16
        assert summary["ideal_gflop"] > 0 and summary["floor_distance"] > 1
        (raw,) = data["raw"]["0.04"][trainer]  # one run per trainer
        assert len(raw["steps"]) == 2  # one warm-up step, one measured
        assert all(len(s["completion_lengths"]) == 8 for s in raw["steps"])  # 2 prompts x 4
