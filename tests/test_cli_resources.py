"""grpo-train trains in one process: a spec asking for several devices is refused, not silently shrunk; and
resources.accelerator reaches the engine."""

import json

from tests.conftest import tiny_spec
from workers.cli import main


def test_grpo_train_refuses_a_multi_device_spec(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**tiny_spec(), "resources": {"devices": 2}}))
    assert main([str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "resources.devices > 1" in capsys.readouterr().err


def test_the_accelerator_pins_the_engine_device(tmp_path):
    from workers.spec import engine_config_from_spec, parse_spec

    def device(resources: dict[str, object]) -> str:
        return engine_config_from_spec(parse_spec({**tiny_spec(), "resources": resources}), data_dir=tmp_path).device

    assert device({}) == "auto"  # any worker: CUDA when it has it
    assert device({"accelerator": "cpu"}) == "cpu"  # even on a GPU worker
    assert device({"accelerator": "cuda", "devices": 2}) == "cuda"  # each rank adds its local index
