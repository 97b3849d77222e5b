"""Tenant secrets: values go in and never come out; names are per tenant."""

from sqlalchemy import select

from app.models import TenantSecret


def test_a_secret_is_stored_encrypted_and_never_returned(client, auth, session_factory) -> None:
    stored = client.put("/v1/secrets/judge-key", json={"value": "sk-very-secret"}, headers=auth)
    assert stored.status_code == 200 and set(stored.json()) == {"name", "created_at", "updated_at"}
    listed = client.get("/v1/secrets", headers=auth)
    assert [s["name"] for s in listed.json()["data"]] == ["judge-key"]
    assert "sk-very-secret" not in stored.text + listed.text
    with session_factory() as session:
        row = session.scalar(select(TenantSecret))
        assert b"sk-very-secret" not in row.ciphertext  # encrypted at rest
    replaced = client.put("/v1/secrets/judge-key", json={"value": "sk-2"}, headers=auth).json()
    assert replaced["updated_at"] >= replaced["created_at"]
    assert len(client.get("/v1/secrets", headers=auth).json()["data"]) == 1


def test_secrets_do_not_cross_tenants(client, auth, other_auth) -> None:
    client.put("/v1/secrets/k", json={"value": "mine"}, headers=auth)
    assert client.get("/v1/secrets", headers=other_auth).json()["data"] == []
    assert client.delete("/v1/secrets/k", headers=other_auth).status_code == 404
    assert client.delete("/v1/secrets/k", headers=auth).status_code == 204
    assert client.get("/v1/secrets", headers=auth).json()["data"] == []


def test_bad_names_and_values_are_422(client, auth) -> None:
    assert client.put("/v1/secrets/bad name!", json={"value": "x"}, headers=auth).status_code in (404, 422)
    bad = client.put("/v1/secrets/ok", json={"value": ""}, headers=auth)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "value"
