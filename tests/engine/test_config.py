"""GRPOConfig mirrors the API schema and rejects inconsistent settings with the fix spelled out."""

import dataclasses

import pytest

from app.schemas.grpo import GRPOHyperparameters
from workers.engine import GRPOConfig


def test_config_mirrors_the_schema_names_and_defaults():
    hp = GRPOHyperparameters()
    config = GRPOConfig(**hp.model_dump())
    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    for name, value in hp.model_dump().items():
        assert name in fields, name
        assert getattr(GRPOConfig(), name) == value, name  # same default on both sides
    assert config.loss_type == "dapo"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"group_size": 1}, "group_size must be in .2, 1024. (advantages compare completions within a group)"),
        ({"loss_type": "ppo"}, "choose one of"),
        ({"epsilon": 0.3, "epsilon_high": 0.2}, "epsilon_high must be >= epsilon"),
        ({"warmup_steps": 11, "max_steps": 10}, "warmup_steps exceeds"),
        ({"top_p": 0.0}, "top_p must be in (0, 1]"),
        ({"delta": 0.5}, "delta must be > 1"),
        ({"micro_batch_size": 0}, "micro_batch_size must be >= 1"),
    ],
)
def test_invariants_name_the_fix(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        GRPOConfig(**overrides)


def test_round_trip_through_dict():
    config = GRPOConfig(stop=["\n"], epsilon_high=0.28)
    assert GRPOConfig.from_dict(config.to_dict()) == config


def test_a_checkpoint_config_with_the_old_eval_threshold_name_still_loads():
    """eval_correct_threshold was renamed eval_success_threshold (the API's eval.success_threshold)."""
    data = GRPOConfig().to_dict()
    del data["eval_success_threshold"]
    data["eval_correct_threshold"] = 0.5
    assert GRPOConfig.from_dict(data).eval_success_threshold == 0.5
