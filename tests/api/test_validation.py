"""Bad job specs get a 4xx problem document that names the field and the reason; never a 500."""

import copy

import pytest

from tests.utils.factories import tiny_spec


def with_change(path: str, value: object) -> dict:
    """tiny_spec() with one dotted-path field replaced (value ... deletes it)."""
    spec = copy.deepcopy(tiny_spec())
    *parents, leaf = path.split(".")
    node = spec
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is ...:
        del node[leaf]
    elif isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return spec


@pytest.mark.parametrize(
    ("path", "value", "field", "error_type"),
    [
        ("model.source", "no such thing!", "model.source", "invalid"),
        ("model.source", "./relative/path", "model.source", "invalid"),
        ("model.source", "/etc", "model.source", "invalid"),  # outside the allowed model roots
        ("model", ..., "model", "missing"),
        ("grpo.group_size", 1, "grpo.group_size", "greater_than_equal"),
        ("grpo.max_steps", -5, "grpo.max_steps", "greater_than_equal"),
        ("grpo.max_steps", 10**9, "grpo.max_steps", "limit_exceeded"),
        ("grpo.learning_rate", 0, "grpo.learning_rate", "greater_than"),
        ("grpo.loss_type", "ppo", "grpo.loss_type", "literal_error"),
        ("grpo.epsilon_high", 0.1, "grpo.epsilon_high", "value_error"),
        ("grpo.unknown_knob", 1, "grpo.unknown_knob", "extra_forbidden"),
        ("dataset.rows", [], "dataset.rows", "too_short"),
        ("dataset.rows", [{"answer": "1"}], "dataset.rows[0].prompt", "invalid"),
        ("dataset.rows", [{"prompt": "p"}], "dataset.rows[0].answer", "invalid"),
        ("rewards", [], "rewards", "too_short"),
        ("rewards", [{"type": "telepathy"}], "rewards[0]", "union_tag_invalid"),
        ("rewards", [{"type": "exact_match", "weight": "heavy"}], "rewards[0].weight", "float_parsing"),
        ("name", "", "name", "string_too_short"),
    ],
)
def test_bad_spec_is_422_naming_the_field(client, auth, path, value, field, error_type):
    response = client.post("/v1/jobs", json=with_change(path, value), headers=auth)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 422 and body["code"] == "validation_error"
    assert {"field": field, "type": error_type} in [{"field": e["field"], "type": e["type"]} for e in body["errors"]]
    assert field in body["detail"]


def test_spec_must_be_a_json_object(client, auth):
    response = client.post("/v1/jobs", content=b"{not json", headers=auth | {"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["errors"][0]["type"] == "json_invalid"
    response = client.post("/v1/jobs", json=[1, 2], headers=auth)
    assert response.status_code == 422


def test_oversized_payload_is_413(client, auth, settings):
    spec = tiny_spec()
    spec["dataset"]["rows"] = [{"prompt": "x" * 1000, "answer": "1"}] * (settings.max_request_bytes // 1000 + 10)
    response = client.post("/v1/jobs", json=spec, headers=auth)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_local_model_under_an_allowed_root_is_accepted(client, auth, settings):
    model_dir = settings.model_roots[0] / "my-model"
    model_dir.mkdir(parents=True)
    response = client.post("/v1/jobs", json=with_change("model.source", str(model_dir)), headers=auth)
    assert response.status_code == 422 and "config.json" in response.json()["detail"]
    (model_dir / "config.json").write_text("{}")
    assert client.post("/v1/jobs", json=with_change("model.source", str(model_dir)), headers=auth).status_code == 201
    escaped = str(settings.model_roots[0] / "my-model" / ".." / ".." / "data")
    assert client.post("/v1/jobs", json=with_change("model.source", escaped), headers=auth).status_code == 422


def test_hub_ids_are_accepted_as_is(client, auth):
    response = client.post("/v1/jobs", json=with_change("model.source", "Qwen/Qwen2.5-0.5B-Instruct"), headers=auth)
    assert response.status_code == 201


def test_unknown_route_and_method_are_problem_documents(client, auth):
    assert client.get("/v1/nothing", headers=auth).json()["code"] == "not_found"
    response = client.delete("/v1/jobs", headers=auth)
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
