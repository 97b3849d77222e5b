"""grpo-admin: keys (create, list, revoke) and tenant limits, against a migrated database."""

import json

import pytest

import app.cli as cli
from app.core.config import Settings
from app.core.migrate import upgrade_database


@pytest.fixture
def admin(tmp_path, monkeypatch, capsys):
    settings = Settings(data_dir=tmp_path, secret_key="s", default_max_running_jobs=3, default_max_queued_jobs=7)
    upgrade_database(settings.database_url)
    monkeypatch.setattr(cli, "settings", settings)

    def run(*argv: str) -> tuple[int, list[str], str]:
        code = cli.main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out.splitlines(), captured.err

    return run


def test_keys_and_limits(admin):
    code, out, _ = admin("create-key", "--tenant", "team", "--name", "ci")
    assert code == 0 and out[0].startswith("grpo_")
    _, tenants, _ = admin("list-tenants")
    assert [json.loads(line) | {"id": None} for line in tenants] == [
        {"id": None, "name": "team", "max_running_jobs": 3, "max_queued_jobs": 7, "keys": 1}  # the operator's defaults
    ]
    code, out, _ = admin("set-limits", "--tenant", "team", "--max-running", "1")
    assert code == 0 and json.loads(out[0])["max_running_jobs"] == 1 and json.loads(out[0])["max_queued_jobs"] == 7
    (key,) = [json.loads(line) for line in admin("list-keys", "--tenant", "team")[1]]
    assert key["name"] == "ci" and key["revoked"] is False and key["last_used_at"] is None
    assert admin("revoke-key", key["id"])[0] == 0
    assert admin("revoke-key", key["id"])[0] == 1  # already revoked
    assert json.loads(admin("list-keys")[1][0])["revoked"] is True


def test_unknown_tenant_is_an_error_not_a_new_tenant(admin):
    code, out, err = admin("list-keys", "--tenant", "nobody")
    assert code == 1 and out == [] and "no tenant" in err
    assert admin("set-limits", "--tenant", "nobody", "--max-queued", "2")[0] == 1
    assert admin("list-tenants")[1] == []
    with pytest.raises(SystemExit):
        admin("set-limits", "--tenant", "team", "--max-running", "0")
