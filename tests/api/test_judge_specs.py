"""Jobs with judge rewards: accepted, and the dataset fields their templates read are checked."""

from tests.conftest import tiny_spec


def test_a_job_with_a_judge_reward_is_accepted_and_its_row_fields_checked(client, auth) -> None:
    judge = {
        "type": "judge_score",
        "judge": {"model": "tiny-demo"},
        "prompt": "{{prompt}} {{completion}} {{row.answer}}",
    }
    accepted = client.post("/v1/jobs", json=tiny_spec() | {"rewards": [judge]}, headers=auth)
    assert accepted.status_code == 201, accepted.text
    missing = {**judge, "prompt": "{{completion}} {{row.missing}}"}
    refused = client.post("/v1/jobs", json=tiny_spec() | {"rewards": [missing]}, headers=auth)
    assert refused.status_code == 422 and "missing" in refused.text
