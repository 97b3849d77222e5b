"""`grpo-train` end to end on a tiny run: metrics lines, checkpoints, resume, spec errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workers.cli import main
from workers.demo import demo_spec
from workers.engine.metrics import is_wall_clock

ROOT = Path(__file__).resolve().parents[1]


def tiny_spec(max_steps: int = 4) -> dict:
    spec = demo_spec()
    spec["grpo"].update(max_steps=max_steps, group_size=4, prompts_per_step=2)
    spec["checkpoint"] = {"every": 2, "keep_last": 2}
    return spec


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_cli_runs_a_spec_and_resumes(tmp_path, capsys):
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(tiny_spec(max_steps=4)))
    out, data = tmp_path / "out", tmp_path / "data"
    assert main([str(spec_path), "--out", str(out), "--data-dir", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "step 4/4" in printed and "step_time_s" in printed and "reward" in printed
    straight = read_metrics(out)
    assert [m["step"] for m in straight] == [1, 2, 3, 4]
    assert {"reward/mean", "time/step_s", "loss"} <= set(straight[0])
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-000002", "checkpoint-000004"]

    # Pretend the run died after checkpoint 2 but after writing step 3's metrics: resume replays step 3
    # and 4, and every step ends up in metrics.jsonl exactly once, with the same values.
    spec_path.write_text(json.dumps(tiny_spec(max_steps=4)))
    import shutil

    shutil.rmtree(out / "checkpoint-000004")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text("\n".join(lines[:3]) + "\n")
    assert main([str(spec_path), "--out", str(out), "--data-dir", str(data), "--resume", "--quiet"]) == 0
    resumed = read_metrics(out)
    assert [m["step"] for m in resumed] == [1, 2, 3, 4]
    strip = [{k: v for k, v in m.items() if not is_wall_clock(k)} for m in resumed]
    assert strip == [{k: v for k, v in m.items() if not is_wall_clock(k)} for m in straight]


def test_invalid_spec_names_the_field(tmp_path, capsys):
    spec = tiny_spec()
    spec["grpo"]["group_size"] = 1
    spec_path = tmp_path / "bad.json"
    spec_path.write_text(json.dumps(spec))
    assert main([str(spec_path), "--out", str(tmp_path / "out")]) == 2
    assert "grpo.group_size" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point(tmp_path):
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(tiny_spec(max_steps=1)))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "workers.cli",
            str(spec_path),
            "--out",
            str(tmp_path / "out"),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "step 1/1" in done.stdout
