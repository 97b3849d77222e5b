"""POST /v1/preflight on both databases, with the real worker code run inline by the queue (a worker's part);
the API process itself only validates, enqueues and waits."""

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.models import Preflight
from tests.conftest import RecordingQueue, tiny_spec
from workers.demo import demo_spec
from workers.preflight import run_preflight_request


class InlineWorkerQueue(RecordingQueue):
    """A worker that answers preflights the moment they are enqueued (or never, with answer=False)."""

    def __init__(self, settings, sessions, answer: bool = True) -> None:
        super().__init__()
        self.settings, self.sessions, self.answer, self.preflights = settings, sessions, answer, []

    def enqueue_preflight(self, preflight_id: uuid.UUID) -> None:
        self.preflights.append(preflight_id)
        if self.answer:
            run_preflight_request(preflight_id=preflight_id, settings=self.settings, session_factory=self.sessions)


def make_client(settings, queue) -> Iterator[TestClient]:
    app = create_app(settings, queue=queue)
    with TestClient(app) as test_client:
        yield test_client
    app.state.engine.dispose()


@pytest.fixture
def pf_queue(settings, session_factory) -> InlineWorkerQueue:
    return InlineWorkerQueue(settings, session_factory)


@pytest.fixture
def pf_client(settings, pf_queue) -> Iterator[TestClient]:
    yield from make_client(settings, pf_queue)


def test_preflight_of_the_demo_task_reports_distributions_and_estimates(pf_client, auth, pf_queue, other_auth):
    spec = demo_spec()
    spec["grpo"] |= {"group_size": 8, "max_steps": 100}
    response = pf_client.post("/v1/preflight", params={"prompts": 4}, json=spec, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "succeeded" and len(pf_queue.preflights) == 1
    report = body["report"]
    assert report["sampled"] == report["sampled"] | {"prompts": 4, "completions": 32}
    assert sum(report["reward"]["total"]["counts"]) == 32
    assert set(report["reward"]["components"]) == {"numeric_match"}
    assert report["tied_groups"]["groups"] == 4 and 0 <= report["tied_groups"]["share"] <= 1
    grader = report["graders"]["numeric_match"]
    assert grader["latency_p95_s"] >= grader["latency_p50_s"] >= 0 and grader["error_rate"] == 0
    lengths = report["completion_length"]
    assert 1 <= lengths["p50"] <= lengths["p95"] <= 3 and 0 <= lengths["truncation_rate"] <= 1
    estimate = report["estimate"]
    assert estimate["total_s"] == pytest.approx(estimate["step_s"] * 100)
    assert estimate["reward_calls_total"] == 8 * 8 * 100
    assert estimate["generated_tokens_total"] == pytest.approx(lengths["mean"] * 64 * 100)
    again = pf_client.get(f"/v1/preflight/{body['id']}", headers=auth).json()
    assert again["report"] == report
    assert pf_client.get(f"/v1/preflight/{body['id']}", headers=other_auth).status_code == 404


def test_a_reward_that_always_ties_is_called_out_in_plain_words(pf_client, auth):
    spec = tiny_spec(max_new_tokens=2) | {"rewards": [{"type": "exact_match", "field": "answer"}]}
    spec["dataset"]["rows"] = [{"prompt": f"{d}:", "answer": "an answer longer than two tokens"} for d in range(5)]
    report = pf_client.post("/v1/preflight", params={"prompts": 3}, json=spec, headers=auth).json()["report"]
    assert report["tied_groups"] == {"share": 1.0, "groups": 3, "by_value": {"0.0": 3}}
    assert report["warnings"][0] == (
        "100% of groups tie at reward 0: the task may be too hard for this model or the reward too strict; "
        "GRPO learns nothing from tied groups"
    )
    assert any("hit max_new_tokens (2)" in warning for warning in report["warnings"])


def test_what_cannot_run_is_a_422_naming_the_field_and_bad_specs_never_reach_a_worker(pf_client, auth, pf_queue):
    missing_model = tiny_spec() | {"model": {"source": "nobody/no-such-model"}}
    response = pf_client.post("/v1/preflight", json=missing_model, headers=auth)
    assert response.status_code == 422 and response.json()["code"] == "preflight_failed"
    assert response.json()["errors"][0]["field"] == "model.source"
    invalid = pf_client.post("/v1/preflight", json=tiny_spec(group_size=1), headers=auth)
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "grpo.group_size"
    assert len(pf_queue.preflights) == 1  # the invalid spec was refused before any worker saw it
    too_many = pf_client.post("/v1/preflight", params={"prompts": 33}, json=tiny_spec(), headers=auth)
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "prompts"


def test_no_worker_is_a_503_and_a_late_worker_skips_the_expired_request(settings, session_factory, auth):
    settings.preflight_pickup_s = 0.5
    queue = InlineWorkerQueue(settings, session_factory, answer=False)
    for client in make_client(settings, queue):
        response = client.post("/v1/preflight", json=tiny_spec(), headers=auth)
        assert response.status_code == 503 and response.json()["code"] == "no_worker"
        assert response.headers["retry-after"] == "30"
    [preflight_id] = queue.preflights
    run_preflight_request(preflight_id=preflight_id, settings=settings, session_factory=session_factory)
    with session_factory() as session:
        row = session.get(Preflight, preflight_id)
        assert row.status == "expired" and row.report is None
