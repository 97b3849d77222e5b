"""The endpoints of reward definitions, checkpoints, evaluations, live events, samples and datasets are
documented in OpenAPI: a description, typed parameters and a documented success response each."""

import pytest

from app.core.config import Settings
from app.main import create_app

ENDPOINTS = [
    ("post", "/v1/rewards"),
    ("get", "/v1/rewards"),
    ("get", "/v1/rewards/{reward_id}"),
    ("delete", "/v1/rewards/{reward_id}"),
    ("post", "/v1/rewards/{reward_id}/versions"),
    ("get", "/v1/rewards/{reward_id}/versions/{version}"),
    ("post", "/v1/rewards/{reward_id}/test"),
    ("post", "/v1/rewards:test"),
    ("get", "/v1/jobs/{job_id}/checkpoints"),
    ("get", "/v1/jobs/{job_id}/checkpoints/{step}"),
    ("get", "/v1/jobs/{job_id}/checkpoints/{step}/download"),
    ("post", "/v1/jobs/{job_id}/checkpoints/{step}/merge"),
    ("get", "/v1/jobs/{job_id}/evaluations"),
    ("post", "/v1/jobs/{job_id}/evaluations"),
    ("get", "/v1/jobs/{job_id}/events"),
    ("get", "/v1/jobs/{job_id}/samples"),
    ("post", "/v1/datasets"),
    ("get", "/v1/datasets"),
    ("get", "/v1/datasets/{dataset_id}"),
]


@pytest.fixture(scope="module")
def openapi(tmp_path_factory):
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data"), secret_key="test-secret"))
    document = app.openapi()
    app.state.engine.dispose()
    return document


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_endpoint_is_documented(openapi, method, path):
    operation = openapi["paths"][path][method]
    assert operation.get("description"), "no description (the route function needs a docstring)"
    success = [code for code in operation["responses"] if code.startswith("2")]
    assert success, "no documented success response"
    if success[0] != "204":
        assert operation["responses"][success[0]].get("content"), "success response has no schema or media type"
    for parameter in operation.get("parameters", []):
        assert "schema" in parameter, parameter["name"]


def test_streams_and_archives_name_their_media_types(openapi):
    events = openapi["paths"]["/v1/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/event-stream"} <= set(events)
    download = openapi["paths"]["/v1/jobs/{job_id}/checkpoints/{step}/download"]["get"]["responses"]["200"]
    assert "application/x-tar" in download["content"]
    upload = openapi["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]
    assert "application/jsonl" in upload
