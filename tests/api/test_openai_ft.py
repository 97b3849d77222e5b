"""The OpenAI-compatible files / fine-tuning routes driven by the real openai SDK over the ASGI app (no worker):
shapes, resolution of "auto", the native spec a request maps to, typed errors, tenancy, idempotency."""

import io
import json
import uuid
from collections.abc import Iterator

import openai
import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.services.openai_files import PROMPT_FIELD

ROWS = [{"messages": [{"role": "user", "content": f"{d}+1="}], "answer": str(d + 1)} for d in range(9)]
GRADER = {
    "type": "multi",
    "name": "score",
    "graders": {
        "exact": {
            "type": "string_check", "name": "exact", "operation": "eq",
            "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}",
        },
        "starts": {
            "type": "python", "name": "starts",
            "source": "def grade(sample, item):\n    return float(sample['output_text'].startswith(item['answer']))\n",
        },
    },
    "calculate_output": "0.5 * exact + 0.5 * starts",
}  # fmt: skip


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def sdk(client: TestClient, headers: dict[str, str]) -> openai.OpenAI:
    key = headers["Authorization"].removeprefix("Bearer ")
    return openai.OpenAI(base_url=str(client.base_url) + "/v1", api_key=key, http_client=client, max_retries=0)


@pytest.fixture
def oa(client: TestClient, auth: dict[str, str]) -> Iterator[openai.OpenAI]:
    yield sdk(client, auth)


def upload(oa: openai.OpenAI, rows: list[dict] = ROWS) -> str:
    return oa.files.create(file=("train.jsonl", io.BytesIO(jsonl(rows))), purpose="fine-tune").id


def test_files_roundtrip(oa: openai.OpenAI, client: TestClient, auth: dict[str, str], settings: Settings) -> None:
    file = oa.files.create(file=("train.jsonl", io.BytesIO(jsonl(ROWS))), purpose="fine-tune")
    assert (file.object, file.purpose, file.status, file.filename) == ("file", "fine-tune", "processed", "train.jsonl")
    assert file.bytes == len(jsonl(ROWS))
    assert oa.files.retrieve(file.id).id == file.id
    assert oa.files.content(file.id).read() == jsonl(ROWS)  # the bytes as uploaded
    native = client.get(f"/v1/datasets/{file.id.removeprefix('file-')}", headers=auth).json()
    assert native["preview"][0][PROMPT_FIELD] == "0+1="
    second = upload(oa)
    assert [f.id for f in oa.files.list()] == [second, file.id]
    assert [f.id for f in oa.files.list(after=second)] == [file.id]
    stored = sorted(p for p in settings.data_dir.rglob("*") if str(uuid.UUID(file.id[5:])) in str(p) and p.is_file())
    assert len(stored) == 2  # the rows the engine reads and the bytes as uploaded
    assert oa.files.delete(file.id).deleted is True
    assert not any(p.exists() for p in stored)  # deleted, not only hidden
    with pytest.raises(openai.NotFoundError):
        oa.files.retrieve(file.id)


def test_file_errors_name_the_line(oa: openai.OpenAI) -> None:
    bad = jsonl(ROWS[:2]) + b'{"answer": "1"}\n'
    with pytest.raises(openai.BadRequestError) as caught:
        oa.files.create(file=("t.jsonl", io.BytesIO(bad)), purpose="fine-tune")
    assert caught.value.param == "file" and "line 3" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        oa.files.create(file=("t.jsonl", io.BytesIO(jsonl(ROWS))), purpose="assistants")
    assert caught.value.param == "purpose"
    with pytest.raises(openai.BadRequestError) as caught:
        oa.files.create(
            file=("t.jsonl", io.BytesIO(jsonl(ROWS))),
            purpose="fine-tune",
            expires_after={"anchor": "created_at", "seconds": 3600},
        )
    assert caught.value.param == "expires_after"  # refused, not silently ignored


def test_create_job_resolves_auto_and_maps_to_native(oa: openai.OpenAI, client: TestClient, auth: dict) -> None:
    train = upload(oa)
    job = oa.fine_tuning.jobs.create(
        model="tiny-demo",
        training_file=train,
        validation_file=train,
        seed=7,
        suffix="plus-one",
        metadata={"team": "a"},
        method={"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": {"batch_size": 3}}},
    )
    assert job.object == "fine_tuning.job" and job.status == "queued" and job.seed == 7
    hyper = job.method.reinforcement.hyperparameters
    assert hyper.batch_size == 3 and hyper.n_epochs == 10 and hyper.compute_multiplier == 1.0
    assert hyper.learning_rate_multiplier == 1.0 and hyper.reasoning_effort == "default"
    assert hyper.eval_interval == 7 and hyper.eval_samples == 1  # 30 steps / 4
    assert job.training_file == train and job.metadata == {"team": "a"} and job.user_provided_suffix == "plus-one"
    spec = client.get(f"/v1/jobs/{job.id.removeprefix('ftjob-')}", headers=auth).json()["spec"]
    grpo = spec["grpo"]
    assert (grpo["prompts_per_step"], grpo["group_size"], grpo["max_steps"], grpo["seed"]) == (3, 8, 30, 7)
    assert spec["dataset"]["prompt_field"] == PROMPT_FIELD and spec["eval"]["every"] == 7
    assert spec["rewards"][0]["type"] == "python" and spec["rewards"][0]["name"] == "score"
    assert oa.fine_tuning.jobs.retrieve(job.id).id == job.id
    events = oa.fine_tuning.jobs.list_events(job.id)
    assert events.data[0].object == "fine_tuning.job.event" and events.data[0].type == "message"


def test_native_extensions_and_list_filters(oa: openai.OpenAI, client: TestClient, auth: dict) -> None:
    train = upload(oa)
    method = {"type": "reinforcement", "reinforcement": {"grader": GRADER}}
    first = oa.fine_tuning.jobs.create(
        model="tiny-demo", training_file=train, method=method, metadata={"run": "1"},
        extra_body={"grpo": {"max_steps": 5, "temperature": 0.7}},
    )  # fmt: skip
    second = oa.fine_tuning.jobs.create(model="tiny-demo", training_file=train, method=method, metadata={"run": "2"})
    spec = client.get(f"/v1/jobs/{first.id.removeprefix('ftjob-')}", headers=auth).json()["spec"]
    assert spec["grpo"]["max_steps"] == 5 and spec["grpo"]["temperature"] == 0.7
    assert [j.id for j in oa.fine_tuning.jobs.list(limit=1).data] == [second.id]
    page = oa.fine_tuning.jobs.list(limit=1, after=second.id)
    assert [j.id for j in page.data] == [first.id] and page.has_more is False
    assert [j.id for j in oa.fine_tuning.jobs.list(metadata={"run": "1"})] == [first.id]
    with pytest.raises(openai.BadRequestError) as caught:
        oa.fine_tuning.jobs.create(model="tiny-demo", training_file=train, method=method, extra_body={"bogus": 1})
    assert caught.value.param == "bogus"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"training_file": "file-0123"}, "training_file"),
        ({"method": {"type": "reinforcement", "reinforcement": {"grader": {**GRADER["graders"]["exact"],
            "reference": "{{ item.solution }}"}}}}, "training_file"),
        ({"method": {"type": "supervised"}}, "method.type"),
        ({"seed": -1}, "seed"),
        ({"metadata": {"k" * 65: "v"}}, "metadata." + "k" * 65),
        ({"method": {"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": {"n_epochs": 0}}}},
         "method.reinforcement.hyperparameters.n_epochs"),
        ({"hyperparameters": {"n_epochs": 2}}, "hyperparameters"),
        ({"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]}, "integrations"),
        ({"extra_body": {"grpo": 3}}, "grpo"),
        ({"extra_body": {"grpo": {"group_size": 1}}}, "grpo.group_size"),
        ({"method": {"type": "reinforcement", "reinforcement": {
            "grader": {**GRADER, "calculate_output": "exact + x"}}}}, "method.reinforcement.grader.calculate_output"),
        ({"method": {"type": "reinforcement", "reinforcement": {"grader": {
            "type": "text_similarity", "name": "c", "input": "{{ sample.output_text }}", "reference": "a",
            "evaluation_metric": "cosine"}}}}, "method.reinforcement.grader.evaluation_metric"),
    ],
)  # fmt: skip
def test_bad_job_requests_are_400_with_param(oa: openai.OpenAI, change: dict, param: str) -> None:
    body = {"model": "tiny-demo", "training_file": upload(oa), "method": {"type": "reinforcement",
            "reinforcement": {"grader": GRADER}}} | change  # fmt: skip
    with pytest.raises(openai.BadRequestError) as caught:
        oa.fine_tuning.jobs.create(**body)
    assert caught.value.param == param
    assert caught.value.body["type"] == "invalid_request_error"


def test_other_tenant_sees_not_found(oa: openai.OpenAI, client: TestClient, other_auth: dict) -> None:
    train = upload(oa)
    job = oa.fine_tuning.jobs.create(
        model="tiny-demo", training_file=train, method={"type": "reinforcement", "reinforcement": {"grader": GRADER}}
    )
    other = sdk(client, other_auth)
    for call in (
        lambda: other.fine_tuning.jobs.retrieve(job.id),
        lambda: other.fine_tuning.jobs.pause(job.id),
        lambda: other.fine_tuning.jobs.resume(job.id),
        lambda: other.fine_tuning.jobs.cancel(job.id),
        lambda: other.fine_tuning.jobs.list_events(job.id),
        lambda: other.fine_tuning.jobs.checkpoints.list(job.id),
        lambda: other.files.retrieve(train),
        lambda: other.files.content(train),
        lambda: other.files.delete(train),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert oa.fine_tuning.jobs.retrieve(job.id).status == "queued" and oa.files.retrieve(train).id == train


def test_cancel_pause_conflicts_do_not_retry(oa: openai.OpenAI, client: TestClient, auth: dict) -> None:
    job = oa.fine_tuning.jobs.create(
        model="tiny-demo",
        training_file=upload(oa),
        method={"type": "reinforcement", "reinforcement": {"grader": GRADER}},
    )
    assert oa.fine_tuning.jobs.pause(job.id).status == "paused"  # queued: paused at once
    assert oa.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    raw = client.post(f"/v1/fine_tuning/jobs/{job.id}/cancel", headers=auth)
    assert raw.status_code == 409 and raw.headers["x-should-retry"] == "false"
    assert raw.json()["error"]["code"] == "job_finished"
    with pytest.raises(openai.ConflictError):
        oa.fine_tuning.jobs.resume(job.id)


def test_idempotency_key_replays_an_upload(oa: openai.OpenAI) -> None:
    def create(data: bytes) -> str:
        file = ("t.jsonl", io.BytesIO(data))
        return oa.files.create(file=file, purpose="fine-tune", extra_headers={"Idempotency-Key": "u1"}).id

    first = create(jsonl(ROWS))
    assert create(jsonl(ROWS)) == first
    with pytest.raises(openai.ConflictError):
        create(jsonl(ROWS[:1]))
    assert len(oa.files.list().data) == 1


def test_idempotency_key_replays_the_job(oa: openai.OpenAI) -> None:
    train = upload(oa)
    body = {"model": "tiny-demo", "training_file": train, "method": {"type": "reinforcement",
            "reinforcement": {"grader": GRADER}}, "seed": 1}  # fmt: skip
    first = oa.fine_tuning.jobs.create(**body, extra_headers={"Idempotency-Key": "k1"})
    again = oa.fine_tuning.jobs.create(**body, extra_headers={"Idempotency-Key": "k1"})
    assert again.id == first.id
    with pytest.raises(openai.ConflictError):
        oa.fine_tuning.jobs.create(**(body | {"seed": 2}), extra_headers={"Idempotency-Key": "k1"})


def test_grader_validate_and_run(oa: openai.OpenAI) -> None:
    assert oa.fine_tuning.alpha.graders.validate(grader=GRADER).grader.type == "multi"
    result = oa.fine_tuning.alpha.graders.run(grader=GRADER, model_sample="56", item={"answer": "5"})
    assert result.reward == 0.5 and result.sub_rewards == {"exact": 0.0, "starts": 1.0}
    assert result.metadata.scores == {"exact": 0.0, "starts": 1.0} and result.metadata.type == "multi"
    broken = {"type": "python", "name": "p", "source": "def grade(sample, item):\n    return 1 / 0\n"}
    failed = oa.fine_tuning.alpha.graders.run(grader=broken, model_sample="x")
    assert failed.metadata.errors.python_grader_runtime_error and "ZeroDivisionError" in (
        failed.metadata.errors.python_grader_runtime_error_details or ""
    )
    with pytest.raises(openai.BadRequestError) as caught:
        oa.fine_tuning.alpha.graders.validate(grader={"type": "python", "name": "p", "source": "def grade(:"})
    assert caught.value.param == "grader.source"
    with pytest.raises(openai.BadRequestError) as caught:
        oa.fine_tuning.alpha.graders.run(
            grader={**GRADER["graders"]["exact"], "reference": "{{ answer }}"}, model_sample="x", item={}
        )
    assert caught.value.param == "grader.reference"


JUDGE = {
    "type": "score_model", "name": "judge", "model": "tiny-demo", "range": [0, 1],
    "input": [{"role": "system", "content": "Grade."},
              {"role": "user", "content": "{{ sample.output_text }} = {{ item.answer }}?"}],
}  # fmt: skip


def test_model_graders_become_judge_rewards_where_the_server_has_them(oa: openai.OpenAI) -> None:
    """score_model -> judge_score where the native union has it (the inference branch), else a 400 saying so."""
    from pydantic import TypeAdapter, ValidationError

    from app.schemas.reward import RewardSpec

    probe = {"type": "judge_score", "judge": {"model": "tiny-demo"}, "prompt": "{{completion}}"}
    try:
        TypeAdapter(RewardSpec).validate_python(probe)
        judges = True
    except ValidationError:
        judges = False
    method = {"type": "reinforcement", "reinforcement": {"grader": JUDGE}}
    if judges:
        job = oa.fine_tuning.jobs.create(model="tiny-demo", training_file=upload(oa), method=method)
        assert job.method.reinforcement.grader.type == "score_model"
        return
    with pytest.raises(openai.BadRequestError) as caught:
        oa.fine_tuning.jobs.create(model="tiny-demo", training_file=upload(oa), method=method)
    assert caught.value.param == "method.reinforcement.grader.type" and "not available" in caught.value.message


def test_openapi_documents_openai_errors_on_these_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    ours = {p: ops for p, ops in paths.items() if p.startswith(("/v1/files", "/v1/fine_tuning"))}
    assert len(ours) == 12
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}}
    for path, operations in ours.items():
        for operation in operations.values():
            assert "422" not in operation["responses"], path
            assert all(operation["responses"][c]["content"] == error for c in ("400", "401", "404", "default")), path


def test_every_route_answers_a_bad_request_with_the_sdk_typed_error(oa: openai.OpenAI) -> None:
    train = upload(oa)
    job = oa.fine_tuning.jobs.create(
        model="tiny-demo", training_file=train, method={"type": "reinforcement", "reinforcement": {"grader": GRADER}}
    )
    with pytest.raises(openai.ConflictError) as caught:  # a queued job trains on it
        oa.files.delete(train)
    assert caught.value.body["code"] == "file_in_use" and caught.value.response.headers["x-should-retry"] == "false"
    for call, param in [
        (lambda: oa.files.list(limit=0), "limit"),
        (lambda: oa.fine_tuning.jobs.list(limit=1000), "limit"),
        (lambda: oa.fine_tuning.jobs.list_events(job.id, limit=0), "limit"),
        (lambda: oa.fine_tuning.jobs.checkpoints.list(job.id, limit=0), "limit"),
        (lambda: oa.fine_tuning.alpha.graders.run(grader=GRADER, model_sample=3), "model_sample"),
        (lambda: oa.fine_tuning.alpha.graders.validate(grader={"type": "nope", "name": "x"}), "grader"),
        (lambda: oa.fine_tuning.alpha.graders.validate(grader={"type": "python", "name": "x"}), "grader.source"),
        (
            lambda: oa.fine_tuning.jobs.create(
                model="m", training_file=train, method={"type": "reinforcement", "reinforcement": {}}
            ),
            "method.reinforcement.grader",
        ),
    ]:
        with pytest.raises(openai.BadRequestError) as caught:
            call()
        assert caught.value.param == param, caught.value.message
    for call in [
        lambda: oa.files.retrieve("file-nope"),
        lambda: oa.files.content("file-nope"),
        lambda: oa.fine_tuning.jobs.retrieve("ftjob-nope"),
        lambda: oa.fine_tuning.jobs.list(after="ftjob-nope"),
    ]:
        with pytest.raises(openai.NotFoundError):
            call()


def test_the_docs_example_runs_until_it_waits_for_the_worker(oa: openai.OpenAI, capsys: pytest.CaptureFixture) -> None:
    """docs/openai-fine-tuning.md's example, as written, up to its polling loop (no worker here); the whole
    example against a live stack is what tests/integration/test_openai_sdk_live.py does with its own job."""
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "openai-fine-tuning.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)  # type: ignore[union-attr]
    setup = 'client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="grpo_...")  # the only changes\n'
    assert setup in code
    code = code.replace(setup, "").split("while ")[0]
    namespace = {"client": oa}
    exec(compile(code, "docs-example", "exec"), namespace)
    assert capsys.readouterr().out.splitlines()[0] == "1.0"
    assert namespace["job"].status == "queued" and namespace["job"].model == "tiny-demo"
