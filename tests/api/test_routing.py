"""Routing by resources: declared worker classes give each job a queue, a job no class can run is a 422
naming `resources`, /metrics shows the depth of each class's queue, and workers consume only what fits."""

import uuid

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.queue import TRAIN_TASK, CeleryJobQueue
from app.main import create_app
from app.schemas.resources import WorkerClass
from app.services.routing import training_route
from tests.utils.factories import RecordingQueue, tiny_spec
from workers.fleet import worker_queues
from workers.fleet_check import fleet_check

CLASSES = [
    {"name": "cpu", "accelerator": "cpu", "devices": 2},
    {"name": "gpu", "accelerator": "cuda", "devices": 8, "memory_gb": 80},
]


@pytest.fixture
def fleet(settings: Settings) -> Settings:
    return settings.model_copy(update={"worker_classes": [WorkerClass(**c) for c in CLASSES]})


@pytest.fixture
def fleet_client(fleet: Settings, queue: RecordingQueue):
    app = create_app(fleet, queue=queue)
    with TestClient(app) as test_client:
        yield test_client
    app.state.engine.dispose()


def submit(client: TestClient, auth: dict[str, str], resources: dict[str, object]):
    return client.post("/v1/jobs", json={**tiny_spec(prompts_per_step=64), "resources": resources}, headers=auth)


class SentTasks:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str], str | None]] = []

    def send_task(self, name: str, args: list[str], queue: str | None = None) -> None:
        self.sent.append((name, args, queue))


def test_jobs_route_to_the_first_class_that_fits(fleet_client, auth, fleet, session_factory):
    cpu = submit(fleet_client, auth, {"devices": 2}).json()["id"]
    gpu = submit(fleet_client, auth, {"accelerator": "cuda", "devices": 4, "memory_gb": 40}).json()["id"]
    celery = SentTasks()
    queue = CeleryJobQueue(celery, route=training_route(session_factory, fleet))  # type: ignore[arg-type]
    queue.enqueue_training(uuid.UUID(cpu))
    queue.enqueue_training(uuid.UUID(gpu))
    assert celery.sent == [(TRAIN_TASK, [cpu], "grpo.cpu"), (TRAIN_TASK, [gpu], "grpo.gpu")]
    events = fleet_client.get(f"/v1/jobs/{gpu}/events", headers=auth).json()["data"]
    waiting = [e["message"] for e in events if e["type"] == "waiting"]
    assert waiting == ["job queued on grpo.gpu: waits for a worker with 4 x cuda (>= 40 GB each)"]
    metrics = fleet_client.get("/metrics").text
    assert 'grpo_queue_depth_by_class{queue="grpo.gpu",worker_class="gpu"} 1.0' in metrics
    assert 'grpo_queue_depth_by_class{queue="grpo.cpu",worker_class="cpu"} 1.0' in metrics


@pytest.mark.parametrize(
    "resources",
    [{"accelerator": "cuda", "devices": 16}, {"accelerator": "cpu", "devices": 4}, {"memory_gb": 100}],
)
def test_a_job_no_class_can_run_is_rejected_naming_resources(fleet_client, auth, resources):
    response = submit(fleet_client, auth, resources)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"][0]["field"] == "resources"
    assert "no worker class can run" in body["detail"] and "gpu: 8 x cuda (80 GB)" in body["detail"]


def test_without_declared_classes_any_job_waits_queued(client, auth, queue):
    response = submit(client, auth, {"accelerator": "cuda", "devices": 64})
    assert response.status_code == 201, response.text
    assert queue.enqueued == [uuid.UUID(response.json()["id"])]
    events = client.get(f"/v1/jobs/{response.json()['id']}/events", headers=auth).json()["data"]
    assert [e["message"] for e in events if e["type"] == "waiting"] == [
        "job queued on grpo: waits for a worker with 64 x cuda"
    ]


def test_each_worker_consumes_only_the_queues_of_jobs_that_fit(fleet: Settings):
    gpu_worker = fleet.model_copy(update={"worker_class": "gpu"})
    cpu_worker = fleet.model_copy(update={"worker_class": "cpu"})
    assert worker_queues(gpu_worker) == ["grpo", "grpo.gpu"]  # the cpu class's jobs need the cpu
    assert worker_queues(cpu_worker) == ["grpo", "grpo.cpu"]


def test_a_worker_leaves_a_job_it_cannot_run_queued_with_an_event(client, auth, settings, session_factory):
    job_id = submit(client, auth, {"accelerator": "cuda", "devices": 64}).json()["id"]
    cpu_worker = settings.model_copy(update={"worker_classes": [WorkerClass(**CLASSES[0])], "worker_class": "cpu"})
    for _ in range(2):  # a second delivery adds no second event
        assert not fleet_check(session_factory=session_factory, job_id=uuid.UUID(job_id), settings=cpu_worker,
                               worker_id="w-cpu")  # fmt: skip
    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert job["status"] == "queued"
    events = client.get(f"/v1/jobs/{job_id}/events", headers=auth).json()["data"]
    assert [e["message"] for e in events if e["type"] == "waiting"][1:] == [
        "waits for a worker with 64 x cuda; worker w-cpu offers 2 x cpu"
    ]


def test_worker_class_must_be_declared(tmp_path):
    with pytest.raises(ValueError, match="GRPO_WORKER_CLASS='gpu' is not one of"):
        Settings(data_dir=tmp_path, worker_class="gpu")


@pytest.mark.parametrize(
    ("knob", "value"),
    [("steps_per_generation", 2), ("sampling_correction", "token_truncate"), ("advantage_baseline", "leave_one_out")],
)
def test_knobs_the_multi_rank_loop_lacks_are_refused_with_several_devices(client, auth, knob, value):
    """The multi-rank loop would ignore them: a 422 naming resources, not a silently different update."""
    spec = {**tiny_spec(prompts_per_step=4, **{knob: value}), "resources": {"devices": 2}}
    response = client.post("/v1/jobs", json=spec, headers=auth)
    assert response.status_code == 422, response.text
    assert any(knob in error["message"] for error in response.json()["errors"])
    assert client.post("/v1/jobs", json={**spec, "resources": {"devices": 1}}, headers=auth).status_code == 201
