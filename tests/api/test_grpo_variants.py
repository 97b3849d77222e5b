"""Every GRPO variant is selectable through the API and reaches the engine's GRPOConfig unchanged;
bad combinations are a 422 naming the field.

The round trip is the worker's: POST /v1/jobs stores the spec, the worker re-validates the stored
JSON (JobSpec.model_validate, as workers/runner.py) and builds the engine config with
workers.spec.engine_config_from_spec.
"""

import dataclasses
import typing
import uuid
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.models.job import Job
from app.schemas.grpo import GRPOHyperparameters
from app.schemas.job import JobSpec, LoraSpec
from tests.utils.factories import tiny_spec
from workers.engine import GRPOConfig, LoraSettings
from workers.engine.train import loss_settings
from workers.spec import engine_config_from_spec, parse_spec

# A value other than the default for every GRPO knob (the test below checks that it is all of them).
NON_DEFAULT: dict[str, Any] = {
    "group_size": 6,
    "prompts_per_step": 3,
    "max_steps": 5,
    "micro_batch_size": 4,
    "num_iterations": 2,
    "steps_per_generation": 2,
    "max_new_tokens": 12,
    "max_prompt_tokens": 64,
    "temperature": 0.9,
    "top_p": 0.95,
    "top_k": 20,
    "repetition_penalty": 1.1,
    "min_p": 0.05,
    "stop": ["\n\n", "###"],
    "scale_rewards": "batch",
    "reward_std_epsilon": 1e-3,
    "advantage_baseline": "leave_one_out",
    "loss_type": "dr_grpo",
    "epsilon": 0.15,
    "epsilon_high": 0.28,
    "delta": 3.0,
    "importance_sampling_level": "sequence",
    "mask_truncated_completions": True,
    "sampling_correction": "sequence_mask",
    "sampling_correction_cap": 2.0,
    "beta": 0.04,
    "kl_bias_correction": True,
    "ref_model_sync_steps": 2,
    "ref_model_mixup_alpha": 0.5,
    "dynamic_sampling": True,
    "max_resample_rounds": 2,
    "learning_rate": 5e-6,
    "lr_scheduler": "cosine",
    "warmup_steps": 2,
    "weight_decay": 0.01,
    "adam_beta1": 0.8,
    "adam_beta2": 0.99,
    "adam_epsilon": 1e-6,
    "max_grad_norm": 0.5,
    "precision": "fp32",
    "gradient_checkpointing": True,
    "seed": 7,
    "num_threads": 1,
    "fast_paths": False,
}
LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}


def test_the_variant_table_covers_every_knob_with_a_non_default_value():
    assert NON_DEFAULT.keys() == GRPOHyperparameters.model_fields.keys()
    defaults = GRPOHyperparameters()
    for name, value in NON_DEFAULT.items():
        assert getattr(defaults, name) != value, name
    assert all(getattr(LoraSpec(), name) != value for name, value in LORA.items())


def submit_and_build(client, auth, session_factory, tmp_path, spec: dict[str, Any]) -> GRPOConfig:
    response = client.post("/v1/jobs", json=spec, headers=auth)
    assert response.status_code == 201, response.text
    with session_factory() as session:
        stored = session.get(Job, uuid.UUID(response.json()["id"])).spec
    return engine_config_from_spec(JobSpec.model_validate(stored), data_dir=tmp_path)


def test_every_variant_reaches_the_engine_config_unchanged(
    client, auth, session_factory: sessionmaker[Session], tmp_path
):
    # Full fine-tuning with every knob changed, and LoRA (whose reference, the base model with the
    # adapters disabled, cannot be synced: see the 422 cases below).
    for grpo, lora in ((NON_DEFAULT, None), ({**NON_DEFAULT, "ref_model_sync_steps": None}, LORA)):
        spec = tiny_spec()
        spec["grpo"] = grpo
        if lora is not None:
            spec["model"]["lora"] = lora
        config = submit_and_build(client, auth, session_factory, tmp_path, spec)
        assert {name: getattr(config, name) for name in grpo} == grpo
        expected = None if lora is None else LoraSettings(**{**lora, "target_modules": tuple(lora["target_modules"])})
        assert config.lora == expected
        loss = loss_settings(config)  # and on into the loss
        assert (loss.loss_type, loss.epsilon, loss.epsilon_high, loss.delta) == ("dr_grpo", 0.15, 0.28, 3.0)
        assert (loss.importance_sampling_level, loss.beta, loss.max_new_tokens) == ("sequence", 0.04, 12)
        assert (loss.sampling_correction, loss.sampling_correction_cap) == ("sequence_mask", 2.0)


CHOICES = [
    (name, choice)
    for name, field in GRPOHyperparameters.model_fields.items()
    if typing.get_origin(field.annotation) is typing.Literal
    for choice in typing.get_args(field.annotation)
]


@pytest.mark.parametrize(("name", "choice"), CHOICES, ids=[f"{n}={c}" for n, c in CHOICES])
def test_every_choice_of_every_option_builds_an_engine_config(tmp_path, name, choice):
    """Each value of each closed-choice knob (scale_rewards, loss_type, importance_sampling_level,
    lr_scheduler, precision) is accepted by the spec and by the engine's own checks."""
    spec = tiny_spec(**{name: choice})
    config = engine_config_from_spec(parse_spec(spec), data_dir=tmp_path)
    assert getattr(config, name) == choice
    assert dataclasses.replace(config) == config  # re-runs GRPOConfig.__post_init__'s checks


# (section, change, field named in the problem document, pydantic error type)
BAD_COMBINATIONS = [
    ("grpo", {"ref_model_sync_steps": 5}, "grpo.ref_model_sync_steps", "value_error"),  # beta is 0
    ("grpo", {"stop": ["\n", ""]}, "grpo.stop[1]", "string_too_short"),  # "" would end every completion at once
    ("grpo", {"delta": 1.0}, "grpo.delta", "greater_than"),
    ("grpo", {"epsilon": 0.3, "epsilon_high": 0.2}, "grpo.epsilon_high", "value_error"),
    ("grpo", {"warmup_steps": 7}, "grpo.warmup_steps", "value_error"),  # 3 steps x 1 update
    ("grpo", {"scale_rewards": "sum"}, "grpo.scale_rewards", "literal_error"),
    ("grpo", {"importance_sampling_level": "token-level"}, "grpo.importance_sampling_level", "literal_error"),
    ("grpo", {"top_p": 0.0}, "grpo.top_p", "greater_than"),
    ("grpo", {"num_iterations": 0}, "grpo.num_iterations", "greater_than_equal"),
    ("grpo", {"micro_batch_size": 0}, "grpo.micro_batch_size", "greater_than_equal"),
    ("grpo", {"steps_per_generation": 13}, "grpo.steps_per_generation", "value_error"),  # 2 prompts x 4 completions
    ("grpo", {"min_p": 1.5}, "grpo.min_p", "less_than_equal"),
    ("grpo", {"sampling_correction_cap": 0.5}, "grpo.sampling_correction_cap", "greater_than_equal"),
    ("model", {"lora": {"r": 0}}, "model.lora.r", "greater_than_equal"),
    ("model", {"lora": {"dropout": 1.0}}, "model.lora.dropout", "less_than"),
    ("model", {"lora": {"target_modules": []}}, "model.lora.target_modules", "too_short"),
    ("model", {"lora": {"rank": 8}}, "model.lora.rank", "extra_forbidden"),
]


def test_bad_combinations_are_422_naming_the_field(client, auth):
    # One client for all cases: the request is rejected before the database is touched, and a fresh
    # migrated database per case would cost most of a second each.
    for section, change, field, error_type in BAD_COMBINATIONS:
        spec = tiny_spec()
        spec[section] = {**spec[section], **change}
        response = client.post("/v1/jobs", json=spec, headers=auth)
        assert response.status_code == 422, (change, response.text)
        body = response.json()
        found = [{"field": e["field"], "type": e["type"]} for e in body["errors"]]
        assert {"field": field, "type": error_type} in found, (change, found)
        assert field in body["detail"]

    # A cross-section rule: the error sits on grpo and names both knobs.
    spec = tiny_spec(beta=0.04, ref_model_sync_steps=2)
    spec["model"]["lora"] = {"r": 4}
    response = client.post("/v1/jobs", json=spec, headers=auth)
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "grpo"
    assert "ref_model_sync_steps" in error["message"] and "model.lora" in error["message"]
