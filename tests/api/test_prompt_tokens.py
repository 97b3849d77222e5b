"""Prompts the model's tokenizer cannot encode are refused at submission (issue 13): the job would train on
unknown tokens, or on prompts with characters silently dropped, and learn nothing. And the dashboard's
prefilled "New job" is the demo job, whose prompts the demo model can encode."""

import json
import re
from pathlib import Path

import pytest

from app.services.model_checks import TINY_DEMO_ALPHABET
from tests.utils.factories import tiny_spec
from workers.demo import demo_rows, demo_spec
from workers.engine.tiny import DEFAULT_ALPHABET, build_tiny_model

NEW_JOB_JS = Path(__file__).resolve().parents[2] / "app/web/static/js/views/new-job.js"


@pytest.fixture
def local_tiny_model(settings) -> str:
    return str(build_tiny_model(settings.model_roots[0]))


def spec_on(source: str, rows: list[dict]) -> dict:
    spec = tiny_spec()
    spec["model"] = {"source": source}
    spec["dataset"] = {"rows": rows}
    return spec


def test_a_prompt_with_characters_outside_the_vocabulary_is_a_422_naming_the_row(client, auth, local_tiny_model):
    rows = [{"prompt": f"{d}+1=", "answer": str(d + 1)} for d in range(3)] + [{"prompt": "copy 3:", "answer": "3"}]
    response = client.post("/v1/jobs", json=spec_on(local_tiny_model, rows), headers=auth)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "dataset.rows[3].prompt" and error["type"] == "unencodable"
    assert "'copy'" in error["message"] or "cannot encode" in error["message"]


def test_held_out_prompts_are_checked_too_and_encodable_prompts_pass(client, auth, local_tiny_model):
    spec = spec_on(local_tiny_model, demo_rows())
    assert client.post("/v1/jobs", json=spec, headers=auth).status_code == 201
    spec["eval"] = {"dataset": {"rows": [{"prompt": "5+1=", "answer": "6"}, {"prompt": "five+1=", "answer": "6"}]}}
    response = client.post("/v1/jobs", json=spec, headers=auth)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "eval.dataset.rows[1].prompt"


def test_the_dashboards_prefilled_job_is_the_demo_job() -> None:
    source = NEW_JOB_JS.read_text()
    match = re.search(r"const DEMO_SPEC = (\{.*?\n\});", source, re.S)
    assert match, "new-job.js must define DEMO_SPEC as a JSON object literal"
    prefill = json.loads(match.group(1))
    assert prefill == demo_spec() | {"name": prefill["name"]}


def test_the_demo_models_prompts_are_checked_against_its_alphabet(client, auth):
    rows = [{"prompt": f"{d}+1=", "answer": str(d + 1)} for d in range(3)] + [{"prompt": "copy 3:", "answer": "3"}]
    response = client.post("/v1/jobs", json=spec_on("tiny-demo", rows), headers=auth)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "dataset.rows[3].prompt" and error["type"] == "unencodable"
    assert "'copy'" in error["message"] and "tiny-demo" in error["message"]
    assert client.post("/v1/jobs", json=spec_on("tiny-demo", demo_rows()), headers=auth).status_code == 201


def test_the_api_knows_the_demo_models_alphabet():
    assert TINY_DEMO_ALPHABET == DEFAULT_ALPHABET
