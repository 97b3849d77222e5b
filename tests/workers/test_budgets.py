"""Budgets with the real runner: crossing one pauses the job after that step with an event naming the budget
and the figures; resume is refused until the budget is raised, then the run continues exactly; a tenant's
budget covers all its jobs together; per-step usage metrics add up to the job's totals."""

import uuid

from app.models import JobEvent, Tenant
from app.schemas.budget import Budget
from app.schemas.job import JobStatus
from app.services import budgets
from tests.conftest import tiny_spec
from workers.engine.metrics import is_wall_clock

CALLS_PER_STEP = 8  # 2 prompts x group 4, one reward component


def spec(**budget: float) -> dict:
    return tiny_spec(max_steps=5, seed=5) | {"budget": budget}


def last_status_event(session_factory, job_id: str) -> JobEvent:
    with session_factory() as session:
        return session.query(JobEvent).filter_by(job_id=uuid.UUID(job_id), type="status").all()[-1]


def test_a_job_budget_pauses_the_job_and_raising_it_continues_exactly(client, auth, worker, session_factory):
    straight = client.post("/v1/jobs", json=spec(), headers=auth).json()["id"]
    assert worker.train(straight).status == JobStatus.succeeded
    job_id = client.post("/v1/jobs", json=spec(reward_calls=20), headers=auth).json()["id"]
    paused = worker.train(job_id)
    assert paused.status == JobStatus.paused and paused.current_step == 3  # 8, 16, 24 >= 20
    event = last_status_event(session_factory, job_id)
    assert event.data == {
        "status": "paused", "reason": "budget", "scope": "job", "budget": "reward_calls", "limit": 20.0, "used": 24.0,
    }  # fmt: skip
    assert "reward_calls budget of 20 is used up (24 used)" in event.message

    refused = client.post(f"/v1/jobs/{job_id}/resume", headers=auth)
    assert refused.status_code == 409 and refused.json()["code"] == "budget_exhausted"
    assert refused.json()["errors"][0]["field"] == "budget.reward_calls"
    raised = client.patch(f"/v1/jobs/{job_id}/budget", json={"reward_calls": 1000}, headers=auth)
    assert raised.status_code == 200 and raised.json()["spec"]["budget"]["reward_calls"] == 1000
    assert client.post(f"/v1/jobs/{job_id}/resume", headers=auth).status_code == 200
    assert worker.train(job_id).status == JobStatus.succeeded

    rows = client.get(f"/v1/jobs/{job_id}/metrics", headers=auth).json()["data"]
    expected = client.get(f"/v1/jobs/{straight}/metrics", headers=auth).json()["data"]
    assert [{k: v for k, v in r["values"].items() if not is_wall_clock(k)} for r in rows] == [
        {k: v for k, v in r["values"].items() if not is_wall_clock(k)} for r in expected
    ]
    usage = client.get(f"/v1/jobs/{job_id}", headers=auth).json()["usage"]
    assert usage["reward_calls"] == 5 * CALLS_PER_STEP  # steps 1-5, each once
    assert usage["generated_tokens"] == sum(r["values"]["usage/tokens_sampled"] for r in rows) > 0
    assert usage["trained_tokens"] == sum(r["values"]["usage/tokens_trained"] for r in rows)
    assert usage["prompt_tokens"] == sum(r["values"]["usage/prompt_tokens"] for r in rows) > 0
    assert usage["wall_clock_s"] > 0 and usage["device_hours"] > 0 and usage["reward_seconds"] > 0


def test_a_tenant_budget_covers_all_its_jobs(client, auth, worker, session_factory):
    first = client.post("/v1/jobs", json=tiny_spec(max_steps=2), headers=auth).json()["id"]
    assert worker.train(first).status == JobStatus.succeeded  # 16 calls
    with session_factory() as session:
        tenant = session.query(Tenant).filter_by(name="team-a").one()
        budgets.set_tenant_budget(session=session, tenant=tenant, budget=Budget(reward_calls=30))
    second = client.post("/v1/jobs", json=tiny_spec(max_steps=4), headers=auth).json()["id"]
    assert worker.train(second).current_step == 2  # 16 + 8 + 8 = 32 >= 30
    event = last_status_event(session_factory, second)
    assert event.data["scope"] == "tenant" and event.data["used"] == 32.0
    refused = client.post(f"/v1/jobs/{second}/resume", headers=auth).json()
    assert refused["code"] == "budget_exhausted" and refused["errors"][0]["field"] == "tenant.budget.reward_calls"
