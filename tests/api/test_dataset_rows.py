"""The row rules, defined once (app/services/dataset_rows.py): at upload, at submit and on the worker."""

import asyncio
import json
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.core.errors import ProblemError
from app.services.dataset_rows import MAX_JSON_DEPTH, FieldIssues, RowError, parse_row
from app.services.datasets import receive_jsonl
from tests.utils.api import JSONL, jsonl
from tests.utils.factories import tiny_spec


def upload(client, auth, body: bytes, **params):
    return client.post("/v1/datasets", params={"name": "d", **params}, content=body, headers=auth | JSONL)


def test_a_mistyped_prompt_is_refused_at_upload_naming_line_and_field(client, auth):
    response = upload(client, auth, b'{"prompt": "a"}\n{"prompt": 7}\n')
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "line 2.prompt"
    assert "non-empty string" in response.json()["detail"]
    # The job may read another field: the upload checks the one it is told about.
    assert upload(client, auth, b'{"q": "a", "prompt": 7}\n', prompt_field="q").status_code == 201
    assert upload(client, auth, b'{"q": ""}\n', prompt_field="q").json()["errors"][0]["field"] == "line 1.q"


def test_a_job_over_a_dataset_without_usable_prompts_is_refused_at_submit(client, auth):
    rows = b'{"q": "a", "answer": "1"}\n{"q": 5, "answer": "2"}\n\n{"answer": "3"}\n'
    dataset = upload(client, auth, rows, prompt_field="x")
    assert dataset.status_code == 201, dataset.text
    dataset_id = dataset.json()["id"]
    spec = tiny_spec() | {"dataset": {"dataset_id": dataset_id, "prompt_field": "q"}}
    refused = client.post("/v1/jobs", json=spec, headers=auth)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["errors"][0]["field"] == "dataset.dataset_id"
    assert f"dataset {dataset_id} line 2" in problem["detail"] and "'q'" in problem["detail"]
    spec["dataset"]["prompt_field"] = "answer"
    missing = upload(client, auth, b'{"answer": "1"}\n{"prompt": "x"}\n{"answer": "2"}\n')
    spec["dataset"]["dataset_id"] = missing.json()["id"]
    refused = client.post("/v1/jobs", json=spec, headers=auth)
    assert refused.status_code == 422 and "line 2 has no field 'answer'" in refused.json()["detail"]


def test_the_worker_checks_stored_rows_with_the_same_rule(session_factory, settings):
    from app.core.storage import make_store
    from app.models import Dataset
    from app.services.datasets import DatasetRowError, read_rows
    from app.services.tenants import get_or_create_tenant

    store = make_store(settings)
    path = settings.data_dir / "old.jsonl"
    path.write_bytes(b'{"prompt": "a"}\n\n{"prompt": 7}\n')
    store.put_file("datasets/old.jsonl", path)
    with session_factory() as session:
        tenant = get_or_create_tenant(session=session, name="old")
        dataset = Dataset(
            tenant_id=tenant.id,
            name="old",
            storage_key="datasets/old.jsonl",
            row_count=2,
            size_bytes=1,
            field_counts={"prompt": 2},
            preview=[],
            sha256="0" * 64,
        )
        assert len(read_rows(store, dataset)) == 2
        with pytest.raises(DatasetRowError, match=r"line 3\.prompt: must be a non-empty string, got 7"):
            read_rows(store, dataset, prompt_field="prompt")
        session.add(dataset)
        session.commit()
        from app.schemas.job import DatasetSpec
        from workers.inputs import JobInputError, load_rows

        spec = DatasetSpec(dataset_id=dataset.id)
        with pytest.raises(JobInputError, match=rf"dataset {dataset.id} line 3\.prompt") as info:
            load_rows(spec, store=store, session=session, tenant_id=tenant.id, param="dataset")
        assert info.value.param == "dataset.dataset_id"


@pytest.mark.parametrize(
    "line",
    [
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError in json (a 500 before)
        b'{"a": ' + b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1) + b"}",
        b'{"a": ' + b"[" * 100_000,  # unterminated and deep
        b'{"a": "\xff"}',  # not UTF-8
        b'{"a": NaN}',
        b'{"a": "\\u0000"}',
        b"\xef\xbb\xbf",
    ],
)
def test_any_unparseable_line_is_a_422_naming_it(client, auth, line):
    response = upload(client, auth, b'{"prompt": "ok"}\n' + line + b"\n")
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"].startswith("line 2")


def test_depth_bound_is_exact():
    nested: object = "x"
    for _ in range(MAX_JSON_DEPTH - 1):
        nested = [nested]
    assert parse_row(json.dumps({"a": nested}))  # exactly MAX_JSON_DEPTH levels
    with pytest.raises(RowError, match="nested more than"):
        parse_row(json.dumps({"a": [nested]}))


def test_field_issues_name_the_first_line_lacking_or_mistyping_a_field():
    issues = FieldIssues()
    for line, row in [(1, {"a": "x", "b": 1}), (2, {"a": "y"}), (4, {"a": "", "c": "z"}), (5, {"a": "w", "b": "t"})]:
        issues.add(line, row)
    assert issues.missing == {"b": 2, "c": 1}
    assert issues.not_text == {"b": 1, "a": 4}


def test_a_row_over_the_size_limit_is_a_413_naming_its_line(client, auth, settings):
    settings.max_dataset_row_bytes = 1000
    ok = b'{"prompt": "a"}\n'
    too_long = b'{"prompt": "' + b"y" * 2000 + b'"}\n'
    response = upload(client, auth, ok + ok + too_long + ok)
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "row_too_large" and response.json()["errors"][0]["field"] == "line 3"
    no_newline = upload(client, auth, ok + b'{"prompt": "' + b"y" * 5000)
    assert no_newline.status_code == 413 and no_newline.json()["errors"][0]["field"] == "line 2"


def test_previews_are_truncated_in_the_201_and_in_lists(client, auth):
    row = {"prompt": "p" * 50_000, "nested": {"deep": ["x" * 1000]}, **{f"f{i}": i for i in range(100)}}
    response = upload(client, auth, jsonl([row] * 3))
    assert response.status_code == 201, response.text
    preview = response.json()["preview"]
    assert len(preview) == 3 and len(preview[0]) == 20
    assert preview[0]["prompt"] == "p" * 200 + "…" and preview[0]["nested"].endswith("…")
    assert len(response.content) < 20_000
    assert len(client.get("/v1/datasets", headers=auth).content) < 20_000


def _parse_time(line_bytes: int) -> float:
    line = b'{"prompt": "' + b"y" * line_bytes + b'"}\n'

    async def chunks():
        for start in range(0, len(line), 16 * 1024):  # the quadratic parser re-joined the line per chunk
            yield line[start : start + 16 * 1024]

    started = time.process_time()  # CPU time: other processes on a busy machine do not count
    received = asyncio.run(
        receive_jsonl(body=chunks(), path=Path("/dev/null"), max_bytes=10**9, max_rows=10, max_row_bytes=10**9)
    )
    assert received.summary.rows == 1
    return time.process_time() - started


def test_a_long_single_line_parses_in_linear_time():
    # A sanity check, not a benchmark: 8x the bytes must not cost anywhere near 64x the time (quadratic).
    _parse_time(1_000_000)  # warm up
    small = min(_parse_time(1_000_000) for _ in range(3))
    large = min(_parse_time(8_000_000) for _ in range(3))
    assert large < 24 * small, (small, large)


def _receive(body: bytes, chunk: int):
    async def chunks():
        for start in range(0, len(body), chunk):
            yield body[start : start + chunk]

    return asyncio.run(
        receive_jsonl(body=chunks(), path=Path("/dev/null"), max_bytes=10**7, max_rows=100, max_row_bytes=4096)
    )


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=20,
)
_line = st.one_of(
    st.binary(max_size=60),
    _json.map(lambda value: json.dumps(value).encode()),
    st.integers(0, 300).map(lambda depth: b'{"a": ' + b"[" * depth + b"]" * depth + b"}"),
    st.integers(1, 6000).map(lambda size: b'{"prompt": "' + b"x" * size + b'"}'),
)


@hypothesis_settings(max_examples=150, deadline=None)
@given(lines=st.lists(_line, min_size=1, max_size=6), chunk=st.integers(1, 64))
def test_any_upload_is_accepted_or_a_4xx_naming_a_line(lines, chunk):
    body = b"\n".join(lines)
    try:
        received = _receive(body, chunk)
    except ProblemError as exc:
        assert exc.status in (413, 422), exc.detail
        assert exc.code == "empty_dataset" or exc.errors[0].field.startswith("line "), exc.detail
        return
    assert 1 <= received.summary.rows <= len(lines)
    for row in received.summary.preview:
        assert len(json.dumps(row)) < 20 * 700


@hypothesis_settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.dictionaries(st.sampled_from("abc"), st.one_of(st.text(max_size=2), st.integers())), max_size=8)
)
def test_field_issues_match_a_brute_force_scan(rows):
    issues = FieldIssues()
    for line, row in enumerate(rows, start=1):
        issues.add(line, row)
    fields = {field for row in rows for field in row}
    for field in fields:
        lacking = [line for line, row in enumerate(rows, start=1) if field not in row]
        not_text = [
            line
            for line, row in enumerate(rows, start=1)
            if field in row and not (isinstance(row[field], str) and row[field])
        ]
        assert issues.missing.get(field) == (lacking[0] if lacking else None)
        assert issues.not_text.get(field) == (not_text[0] if not_text else None)
