"""Budgets through the API on both databases: spec validation, PATCH /jobs/{id}/budget, usage on the job,
and the operator's tenant budgets (grpo-admin set-limits --budget-*)."""

import json
import uuid

import pytest

import app.cli as cli
from app.models import Job
from app.services import budgets, runs
from tests.conftest import tiny_spec


def test_budget_fields_are_validated_by_name(client, auth):
    for budget, field in (({"reward_calls": 0}, "budget.reward_calls"), ({"tokens": 5}, "budget.tokens")):
        response = client.post("/v1/jobs", json=tiny_spec() | {"budget": budget}, headers=auth)
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == field


def test_patch_budget_and_usage_on_the_job(client, auth, other_auth, session_factory):
    job = client.post("/v1/jobs", json=tiny_spec() | {"budget": {"device_hours": 2}}, headers=auth).json()
    assert job["spec"]["budget"]["device_hours"] == 2 and job["usage"]["generated_tokens"] == 0
    assert client.patch(f"/v1/jobs/{job['id']}/budget", json={"reward_calls": 5}, headers=other_auth).status_code == 404
    bad = client.patch(f"/v1/jobs/{job['id']}/budget", json={"wall_clock_s": -1}, headers=auth)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "wall_clock_s"
    job_id = uuid.UUID(job["id"])
    with session_factory() as session:
        runs.claim_job(session=session, job_id=job_id, worker_id="w1", max_attempts=3)
        step = {"usage/tokens_sampled": 30.0, "usage/reward_calls": 8.0, "time/device_s": 7200.0, "time/step_s": 1.5}
        budgets.record_usage(session=session, job_id=job_id, worker_id="w1", metrics=step)
        budgets.record_usage(session=session, job_id=job_id, worker_id="other", metrics=step)  # not its job: ignored
        crossing = budgets.crossed(session=session, job_id=job_id)
        assert crossing is not None and (crossing.budget, crossing.used) == ("device_hours", 2.0)
    usage = client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["usage"]
    assert usage["generated_tokens"] == 30 and usage["reward_calls"] == 8 and usage["device_hours"] == 2.0
    updated = client.patch(f"/v1/jobs/{job['id']}/budget", json={"device_hours": 3}, headers=auth).json()
    assert updated["spec"]["budget"] == {
        "wall_clock_s": None, "device_hours": 3.0, "generated_tokens": None, "reward_calls": None,
        "reward_seconds": None,
    }  # fmt: skip
    with session_factory() as session:
        assert budgets.crossed(session=session, job_id=job_id) is None
        session.get(Job, job_id).status = "succeeded"
        session.commit()
    finished = client.patch(f"/v1/jobs/{job['id']}/budget", json={}, headers=auth)
    assert finished.status_code == 409 and finished.json()["code"] == "job_finished"


def test_operator_sets_and_clears_tenant_budgets(settings, monkeypatch, capsys):
    monkeypatch.setattr(cli, "settings", settings)
    assert cli.main(["create-key", "--tenant", "ops"]) == 0
    capsys.readouterr()
    assert (
        cli.main(["set-limits", "--tenant", "ops", "--budget-reward-calls", "100", "--budget-device-hours", "2.5"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["budget"] == {"reward_calls": 100, "device_hours": 2.5}
    assert cli.main(["set-limits", "--tenant", "ops", "--budget-reward-calls", "0"]) == 0  # 0 removes one limit
    assert json.loads(capsys.readouterr().out)["budget"] == {"device_hours": 2.5}
    assert cli.main(["set-limits", "--tenant", "ops", "--budget-generated-tokens", "1.5"]) == 2
    assert "generated_tokens" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["set-limits", "--tenant", "ops", "--budget-wall-clock-s", "-1"])
