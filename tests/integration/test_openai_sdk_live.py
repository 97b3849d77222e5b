"""The official openai SDK against a live API and a real Celery worker (no mocks): the OpenAI-compatible
reinforcement fine-tuning surface end to end on the tiny demo model. On PostgreSQL when TEST_POSTGRES_URL is set."""

import io
import json
import time
import uuid
from collections.abc import Iterator

import openai
import pytest

from scripts.stack import admin
from tests.integration.conftest import shared_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = [{"messages": [{"role": "user", "content": f"{d}+1="}], "answer": str(d + 1)} for d in range(9)]
GRADER = {
    "type": "multi",
    "name": "plus_one",
    "graders": {
        "exact": {"type": "string_check", "name": "exact", "operation": "eq",
                  "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"},
        "starts": {"type": "python", "name": "starts", "source": (
            "def grade(sample, item):\n    return float(sample['output_text'].startswith(item['answer']))\n")},
    },
    "calculate_output": "0.5 * exact + 0.5 * starts",
}  # fmt: skip
METHOD = {"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": {"batch_size": 3}}}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[openai.OpenAI, openai.OpenAI]]:
    with shared_stack(tmp_path_factory.mktemp("openai"), worker=True) as (stack, key):
        other = admin(stack.env, "create-key", "--tenant", "someone-else")
        with (
            openai.OpenAI(base_url=stack.base_url + "/v1", api_key=key) as client,
            openai.OpenAI(base_url=stack.base_url + "/v1", api_key=other) as stranger,
        ):
            yield client, stranger


def wait(client: openai.OpenAI, job_id: str, statuses: set[str], timeout_s: float = 240) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job.status
        assert job.status not in {"failed", "cancelled"}, job.error
        time.sleep(0.3)
    raise TimeoutError(f"{job_id} never reached {statuses}")


def test_rft_job_end_to_end(live: tuple[openai.OpenAI, openai.OpenAI]) -> None:
    client, stranger = live
    rows = "".join(json.dumps(r) + "\n" for r in ROWS).encode()
    train = client.files.create(file=("train.jsonl", io.BytesIO(rows)), purpose="fine-tune")
    assert client.fine_tuning.alpha.graders.validate(grader=GRADER).grader is not None
    run = client.fine_tuning.alpha.graders.run(grader=GRADER, model_sample="5", item={"answer": "5"})
    assert run.reward == 1.0 and run.sub_rewards == {"exact": 1.0, "starts": 1.0}

    job = client.fine_tuning.jobs.create(
        model="tiny-demo", training_file=train.id, validation_file=train.id, seed=3, metadata={"case": "e2e"},
        method={"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": {
            "batch_size": 3, "n_epochs": 2, "eval_interval": 3}}},
    )  # fmt: skip
    assert job.method.reinforcement.hyperparameters.n_epochs == 2  # 2 * 9 rows / 3 per step = 6 steps
    other = client.fine_tuning.jobs.create(model="tiny-demo", training_file=train.id, method=METHOD)
    page = client.fine_tuning.jobs.list(limit=1, after=other.id)
    assert [j.id for j in page.data] == [job.id]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"case": "e2e"}).data] == [job.id]

    # pause / resume / cancel the second job while the first waits for the worker (concurrency 1)
    assert client.fine_tuning.jobs.pause(other.id).status in ("paused", "pausing")
    assert wait(client, other.id, {"paused"}) == "paused"
    assert client.fine_tuning.jobs.resume(other.id).status == "queued"
    assert client.fine_tuning.jobs.cancel(other.id).status in ("cancelled", "queued", "running")
    assert wait(client, other.id, {"cancelled"}) == "cancelled"

    assert wait(client, job.id, {"succeeded"}) == "succeeded"
    done = client.fine_tuning.jobs.retrieve(job.id)
    native_id = uuid.UUID(job.id.removeprefix("ftjob-"))
    assert done.fine_tuned_model == f"{native_id}:ckpt-6"  # a model id for /v1/chat/completions
    assert done.finished_at and done.trained_tokens is not None
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    train = [e for e in events if e.type == "metrics" and "train_reward_mean" in e.data]
    assert sorted(e.data["step"] for e in train) == [1, 2, 3, 4, 5, 6]
    assert all(0.0 <= e.data["train_reward_mean"] <= 1.0 for e in train)
    valid = [e for e in events if e.type == "metrics" and "valid_reward_mean" in e.data]
    assert valid and all(0.0 <= e.data["valid_reward_mean"] <= 1.0 for e in valid)
    assert events[0].created_at >= events[-1].created_at  # newest first, as OpenAI
    older = client.fine_tuning.jobs.list_events(job.id, limit=2, after=events[1].id)
    assert [e.id for e in older.data] == [e.id for e in events[2:4]]
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints[0].step_number == 6 and checkpoints[0].fine_tuning_job_id == job.id
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{native_id}:ckpt-6"
    assert checkpoints[0].metrics.train_reward_mean is not None

    with pytest.raises(openai.NotFoundError):
        stranger.fine_tuning.jobs.retrieve(job.id)
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model="tiny-demo", training_file="file-missing", method=METHOD)
    assert caught.value.param == "training_file"
    with pytest.raises(openai.ConflictError):  # no retries: x-should-retry: false
        client.fine_tuning.jobs.cancel(job.id)
