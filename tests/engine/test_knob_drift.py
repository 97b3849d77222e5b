"""One definition per knob (issue 15 item 2): the API schema (app/schemas/grpo.py) documents every GRPO
knob with its type, default, range and reason; the engine's GRPOConfig (and the data in knobs.py) must
agree with it field by field, and the cross-field rules must reject the same cases on both sides. The
engine cannot import `app`, so this test is what keeps them one definition: change a range, a default
or a rule on one side only and it fails."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import annotated_types
import pytest
from pydantic import ValidationError

from app.schemas.grpo import GRPOHyperparameters
from workers.engine import GRPOConfig, LoraSettings
from workers.engine.knobs import CHOICES, LIMITS, OPTIONAL, STOP_STRING_MAX_CHARS, STOP_STRINGS_MAX

API_FIELDS = GRPOHyperparameters.model_fields
ENGINE_FIELDS = {f.name: f for f in dataclasses.fields(GRPOConfig)}
BOUNDS = {annotated_types.Ge: "ge", annotated_types.Gt: "gt", annotated_types.Le: "le", annotated_types.Lt: "lt"}


def api_bounds(name: str) -> dict[str, float]:
    return {BOUNDS[type(m)]: getattr(m, BOUNDS[type(m)]) for m in API_FIELDS[name].metadata if type(m) in BOUNDS}


def api_type(name: str) -> tuple[str, bool]:
    """(base type name, optional) of an API field; Literals count as 'str' (the engine's closed strings)."""
    annotation = API_FIELDS[name].annotation
    args = typing.get_args(annotation)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), annotation) if optional else annotation
    if typing.get_origin(base) is typing.Literal:
        return "str", optional
    if typing.get_origin(base) is list:
        return "list[str]", optional
    return base.__name__, optional


def test_every_api_knob_has_one_engine_field_of_the_same_type_and_default():
    assert API_FIELDS, "the schema has knobs"
    defaults = GRPOConfig()
    for name, field in API_FIELDS.items():
        assert name in ENGINE_FIELDS, f"{name}: in the API, not in GRPOConfig"
        assert field.description, f"{name}: the API documents every knob"
        base, optional = api_type(name)
        assert ENGINE_FIELDS[name].type == (f"{base} | None" if optional else base), name
        default = field.get_default(call_default_factory=True)
        assert getattr(defaults, name) == default, name
        assert (name in OPTIONAL) == optional, f"{name}: None means 'disabled' on one side only"


def test_choices_are_the_api_literals():
    literals = {
        name: typing.get_args(field.annotation)
        for name, field in API_FIELDS.items()
        if typing.get_origin(field.annotation) is typing.Literal
    }
    assert literals == CHOICES


def test_ranges_are_the_api_ranges():
    for name in API_FIELDS:
        bounds = api_bounds(name)
        if name == "stop":  # a list: its limits are on the items and the length (next test)
            continue
        limit = LIMITS.get(name)
        engine = (
            {} if limit is None else {k: getattr(limit, k) for k in BOUNDS.values() if getattr(limit, k) is not None}
        )
        assert engine == bounds, f"{name}: engine {engine} != API {bounds}"


def _accepted_by_api(values: dict[str, Any]) -> bool:
    try:
        GRPOHyperparameters(**values)
    except ValidationError:
        return False
    return True


def _accepted_by_engine(values: dict[str, Any]) -> bool:
    try:
        GRPOConfig(**values)
    except ValueError:
        return False
    return True


def _probes(name: str) -> list[Any]:
    """Values at and just past each bound of a numeric knob."""
    values = []
    for kind, bound in api_bounds(name).items():
        step = 1 if isinstance(GRPOConfig().__getattribute__(name) or 0, int) and not isinstance(bound, float) else 1e-9
        values += [bound, bound - step, bound + step] if kind in ("ge", "gt", "le", "lt") else []
    return values


# Settings under which each probed value is only judged by its own range (no cross-field rule fires).
ROOMY = {"max_steps": 10**6, "prompts_per_step": 64, "beta": 0.04}


@pytest.mark.parametrize("name", [n for n in API_FIELDS if api_bounds(n) and n != "stop"])
def test_both_sides_accept_and_reject_the_same_values_at_the_bounds(name):
    for value in _probes(name):
        values = {**ROOMY, name: value}
        if name == "epsilon_high":
            values["epsilon"] = 0.0
        if name in ("max_steps", "prompts_per_step"):
            values.pop("max_steps" if name == "max_steps" else "prompts_per_step")
        assert _accepted_by_api(values) == _accepted_by_engine(values), (name, value)


@pytest.mark.parametrize(
    "stop",
    [[], ["x"], ["x" * STOP_STRING_MAX_CHARS], ["x" * (STOP_STRING_MAX_CHARS + 1)], [""],
     ["s"] * STOP_STRINGS_MAX, ["s"] * (STOP_STRINGS_MAX + 1)],
)  # fmt: skip
def test_stop_strings_have_the_same_limits(stop):
    assert _accepted_by_api({"stop": stop}) == _accepted_by_engine({"stop": stop})


# Every cross-field rule: (values, the knob both sides must name). The last cases are allowed on both.
CROSS_FIELD = [
    ({"epsilon": 0.3, "epsilon_high": 0.2}, "epsilon_high"),
    ({"ref_model_sync_steps": 2}, "ref_model_sync_steps"),  # beta is 0
    ({"warmup_steps": 21, "max_steps": 10, "num_iterations": 2}, "warmup_steps"),
    ({"warmup_steps": 41, "max_steps": 10, "num_iterations": 2, "steps_per_generation": 2}, "warmup_steps"),
    ({"steps_per_generation": 9, "prompts_per_step": 2, "group_size": 4}, "steps_per_generation"),
    ({"epsilon": 0.2, "epsilon_high": 0.2, "ref_model_sync_steps": 2, "beta": 0.1}, None),
    ({"warmup_steps": 40, "max_steps": 10, "num_iterations": 2, "steps_per_generation": 2}, None),
    ({"steps_per_generation": 8, "prompts_per_step": 2, "group_size": 4}, None),
]


@pytest.mark.parametrize(("values", "knob"), CROSS_FIELD)
def test_cross_field_rules_reject_the_same_cases_naming_the_same_knob(values, knob):
    if knob is None:
        GRPOHyperparameters(**values)
        GRPOConfig(**values)
        return
    with pytest.raises(ValidationError) as api:
        GRPOHyperparameters(**values)
    assert [e["loc"][0] for e in api.value.errors()] == [knob]
    with pytest.raises(ValueError, match=rf"^{knob} "):
        GRPOConfig(**values)


def test_lora_with_reference_sync_is_rejected_on_both_sides():
    """The one rule across spec sections (model.lora + grpo): JobSpec on the API side, GRPOConfig here."""
    from app.schemas.job import JobSpec
    from tests.utils.factories import tiny_spec

    spec = tiny_spec(beta=0.04, ref_model_sync_steps=2)
    spec["model"]["lora"] = {"r": 4}
    with pytest.raises(ValidationError, match="ref_model_sync_steps"):
        JobSpec.model_validate(spec)
    with pytest.raises(ValueError, match="^ref_model_sync_steps cannot be used with lora"):
        GRPOConfig(beta=0.04, ref_model_sync_steps=2, lora=LoraSettings(r=4))
