"""A job name of only whitespace is refused (issue 14 item 11)."""

import pytest

from tests.utils.factories import tiny_spec


@pytest.mark.parametrize("name", [" ", "\t\n", "\u3000"])
def test_a_blank_job_name_is_a_422_naming_name(client, auth, name):
    response = client.post("/v1/jobs", json=tiny_spec() | {"name": name}, headers=auth)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "name"
    assert response.json()["errors"][0]["type"] == "blank_name"


def test_a_name_with_surrounding_spaces_is_kept(client, auth):
    response = client.post("/v1/jobs", json=tiny_spec() | {"name": " run 1 "}, headers=auth)
    assert response.status_code == 201 and response.json()["name"] == " run 1 "
