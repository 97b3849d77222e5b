"""Judge rewards resolved as a job's worker resolves them: a judge served by this service's own inference
worker (the tiny model: the point is the wiring and the parsing, not the judgement), tenancy of judge
model ids, and API keys from tenant secrets."""

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from pydantic import TypeAdapter

from app.models import Checkpoint, Job
from app.schemas.reward import RewardSample, RewardSpec
from app.services.inference import usage_totals
from app.services.secrets import put_secret
from app.services.tenants import get_or_create_tenant
from tests.conftest import tiny_spec
from workers.inference.server import create_worker_app
from workers.judges import judge_resolver
from workers.rewards import RewardConfigError, build_reward_fn
from workers.rewards.judge import parse_label

LABELS = list("0123456789+-=:>?")
SPEC = TypeAdapter(RewardSpec)


@pytest.fixture
def inference_url(settings) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_worker_app(settings), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def tenant_id(session_factory, name: str) -> uuid.UUID:
    with session_factory() as session:
        return get_or_create_tenant(session=session, name=name).id


def label_spec(model: str = "tiny-demo") -> object:
    return SPEC.validate_python(
        {
            "type": "judge_label",
            "judge": {"model": model, "max_tokens": 1},
            "prompt": "{{completion}}",
            "labels": LABELS,
            "passing": ["1"],
            "max_error_rate": 1.0,
        }
    )


def test_a_judge_served_by_this_service(settings, session_factory, inference_url) -> None:
    settings = settings.model_copy(update={"inference_url": inference_url})
    resolve = judge_resolver(settings, session_factory, tenant_id(session_factory, "team-a"))
    completions = ["12", "3", "45", "12"]
    with build_reward_fn([label_spec()], judges=resolve) as fn:
        samples = [RewardSample(prompt="p", completion=c, row={}) for c in completions]
        results = fn.score_samples(samples)
        metrics = fn(["p"] * 4, completions, [{}] * 4).metrics
    # the judge's greedy one-token answers, asked directly: the reward must be exactly their parse
    for completion, result in zip(completions, results, strict=True):
        body = {
            "model": {"id": "tiny-demo", "kind": "base", "source": "tiny-demo"},
            "messages": [{"role": "user", "content": completion}],
            "max_tokens": 1,
            "temperature": 0,
        }
        answer = httpx.post(f"{inference_url}/generate", json=body, timeout=60).json()["choices"][0]["text"]
        try:
            expected: float | None = parse_label(answer, LABELS, ["1"])
        except ValueError:
            expected = None
        assert result.components["judge_label"] == expected, (completion, answer, result)
        assert (expected is None) == ("judge_label" in result.errors)
    assert metrics["reward/judge_label/judge_cache_hits"] == 3  # the 3 distinct questions were asked before
    assert metrics["reward/judge_label/judge_calls"] == 0
    with session_factory() as session:  # the judge's tokens are the tenant's inference usage
        usage = usage_totals(session=session, tenant_id=tenant_id(session_factory, "team-a"), since=None)
    assert [(u["model"], u["requests"]) for u in usage] == [("tiny-demo", 1)]  # one scored batch with calls
    assert usage[0]["prompt_tokens"] > 0


def test_judge_models_follow_tenancy(settings, session_factory, client, auth, other_auth) -> None:
    job_id = client.post("/v1/jobs", json=tiny_spec(), headers=auth).json()["id"]
    with session_factory() as session:
        session.add(Checkpoint(job_id=uuid.UUID(job_id), step=1, storage_key="k", size_bytes=1))
        session.commit()
        assert session.get(Job, uuid.UUID(job_id)) is not None
    mine = judge_resolver(settings, session_factory, tenant_id(session_factory, "team-a"))
    target = mine(label_spec(f"{job_id}:latest").judge)
    assert target.kind == "service" and target.service_spec["storage_key"] == "k"
    theirs = judge_resolver(settings, session_factory, tenant_id(session_factory, "team-b"))
    assert other_auth  # team-b exists
    with pytest.raises(RewardConfigError, match="neither a base model"):
        theirs(label_spec(f"{job_id}:latest").judge)


def test_external_judges_get_the_key_from_a_tenant_secret(settings, session_factory) -> None:
    team = tenant_id(session_factory, "team-a")
    judge = SPEC.validate_python(
        {
            "type": "judge_score",
            "judge": {"model": "gpt-x", "base_url": "https://judge.example/v1", "api_key_secret": "judge-key"},
            "prompt": "{{completion}}",
        }
    ).judge
    resolve = judge_resolver(settings, session_factory, team)
    with pytest.raises(RewardConfigError, match="no secret named 'judge-key'"):
        resolve(judge)
    with session_factory() as session:
        put_secret(session=session, tenant_id=team, name="judge-key", value="sk-123", server_secret="test-secret")
    target = resolve(judge)
    assert target.kind == "openai" and target.url == "https://judge.example/v1"
    assert target.headers == {"Authorization": "Bearer sk-123"}
    other = judge_resolver(settings, session_factory, tenant_id(session_factory, "team-b"))
    with pytest.raises(RewardConfigError):
        other(judge)  # another tenant's secret of the same name is not theirs
