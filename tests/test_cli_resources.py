"""grpo-train trains in one process: a spec asking for several devices is refused, not silently shrunk."""

import json

from tests.conftest import tiny_spec
from workers.cli import main


def test_grpo_train_refuses_a_multi_device_spec(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**tiny_spec(), "resources": {"devices": 2}}))
    assert main([str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "resources.devices > 1" in capsys.readouterr().err
