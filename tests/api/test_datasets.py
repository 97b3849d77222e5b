"""Dataset uploads: streamed JSONL, validated line by line, tenant-scoped."""

import pytest

from tests.utils.api import JSONL, jsonl


def test_upload_summarises_rows_fields_and_preview(client, auth):
    rows = [{"prompt": f"p{i}", "answer": str(i)} for i in range(12)] + [{"prompt": "extra", "note": "x"}]
    response = client.post("/v1/datasets", params={"name": "train"}, content=jsonl(rows), headers=auth | JSONL)
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["row_count"] == 13
    assert dataset["field_counts"] == {"prompt": 13, "answer": 12, "note": 1}
    assert dataset["preview"] == rows[:5]
    assert client.get(f"/v1/datasets/{dataset['id']}", headers=auth).json() == dataset
    assert [d["id"] for d in client.get("/v1/datasets", headers=auth).json()["data"]] == [dataset["id"]]


def test_first_bad_line_is_named(client, auth):
    body = b'{"prompt": "a"}\n\n{"prompt": "b"}\n{"prompt": oops}\n{"prompt": "c"}\n'
    response = client.post("/v1/datasets", params={"name": "bad"}, content=body, headers=auth | JSONL)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "invalid_jsonl" and problem["errors"][0]["field"] == "line 4"
    not_object = client.post(
        "/v1/datasets", params={"name": "bad"}, content=b'{"a": 1}\n[1, 2]\n', headers=auth | JSONL
    )
    assert not_object.json()["errors"][0]["field"] == "line 2"
    assert client.get("/v1/datasets", headers=auth).json()["data"] == []  # nothing half-stored


def test_limits_and_content_type(client, auth, settings):
    assert client.post("/v1/datasets", params={"name": "x"}, content=b"", headers=auth | JSONL).status_code == 422
    wrong_type = client.post("/v1/datasets", params={"name": "x"}, content=b'{"a": 1}', headers=auth)
    assert wrong_type.status_code == 415
    settings.max_dataset_bytes = 100
    big = client.post("/v1/datasets", params={"name": "x"}, content=jsonl([{"p": "y" * 50}] * 5), headers=auth | JSONL)
    assert big.status_code == 413


def test_datasets_are_tenant_scoped(client, auth, other_auth):
    dataset = client.post(
        "/v1/datasets", params={"name": "mine"}, content=jsonl([{"prompt": "p"}]), headers=auth | JSONL
    ).json()
    assert client.get(f"/v1/datasets/{dataset['id']}", headers=other_auth).status_code == 404
    assert client.get("/v1/datasets", headers=other_auth).json()["data"] == []


def test_uploads_stream_past_the_request_body_cap(auth, settings):
    from fastapi.testclient import TestClient

    from app.main import create_app

    # 1000 bytes is all any other endpoint accepts here; datasets stream under their own, larger limit.
    app = create_app(settings.model_copy(update={"max_request_bytes": 1000}))
    rows = [{"prompt": f"prompt number {i}", "answer": str(i)} for i in range(2000)]
    with TestClient(app) as client:
        response = client.post("/v1/datasets", params={"name": "big"}, content=jsonl(rows), headers=auth | JSONL)
        assert response.status_code == 201, response.text
        assert response.json()["row_count"] == 2000 and response.json()["size_bytes"] > 50_000
        capped = client.post("/v1/rewards:test", content=b"x" * 2000, headers=auth)
        assert capped.status_code == 413  # the cap is in force for the other routes
    app.state.engine.dispose()


def test_lines_split_across_chunks_and_the_first_bad_line_deep_in_the_stream(session_factory, settings):
    import asyncio
    import tempfile
    from pathlib import Path

    from app.core.errors import ProblemError
    from app.core.storage import make_store
    from app.services.datasets import receive_jsonl, store_dataset
    from app.services.tenants import get_or_create_tenant

    async def chunks(body: bytes, size: int):
        for start in range(0, len(body), size):
            yield body[start : start + size]

    def upload(body: bytes):
        with session_factory() as session, tempfile.TemporaryDirectory() as tmp:
            tenant = get_or_create_tenant(session=session, name="streaming")
            received = asyncio.run(
                receive_jsonl(
                    body=chunks(body, 7),  # lines straddle chunk boundaries
                    path=Path(tmp) / "rows.jsonl",
                    max_bytes=10**7,
                    max_rows=10**6,
                    max_row_bytes=10**6,
                )
            )
            store = make_store(settings)
            return store_dataset(session=session, store=store, tenant=tenant, name="chunks", upload=received)

    rows = [{"prompt": f"p{i}", "answer": i} for i in range(3000)]
    assert upload(jsonl(rows)).row_count == 3000
    broken = jsonl(rows[:2499]) + b'{"prompt": "p2499", "answer": }\n' + jsonl(rows[2500:])
    with pytest.raises(ProblemError) as info:
        upload(broken)
    assert info.value.errors[0].field == "line 2500" and info.value.detail.startswith("line 2500: not valid JSON")
