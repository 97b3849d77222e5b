"""The dashboard's files as the service serves them (no browser needed): every module resolves, nothing
is fetched from another host, and browsers revalidate them."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from app.web import STATIC_DIR

IMPORT = re.compile(r"""(?:^|\n)\s*import\s[^'"]*?['"](\.[^'"]+)['"]""")
URL = re.compile(r"""https?://[^\s'"`)]+""")
ALLOWED_URLS = {"http://www.w3.org/2000/svg"}  # the SVG namespace: a name, never fetched


@pytest.fixture
def web(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'grpo.db'}",
        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        secret_key="test-secret",
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_root_and_bare_path_lead_to_the_dashboard(web: TestClient) -> None:
    for path in ("/", "/dashboard"):
        response = web.get(path, follow_redirects=False)
        assert response.status_code in (302, 307) and response.headers["location"].endswith("/dashboard/")
    page = web.get("/dashboard/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="js/main.js">' in page.text
    assert page.headers["cache-control"] == "no-cache"
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self' covers scripts
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_every_module_import_resolves_to_a_served_script(web: TestClient) -> None:
    pending, seen = ["js/main.js"], set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        response = web.get(f"/dashboard/{path}")
        assert response.status_code == 200, path
        assert "javascript" in response.headers["content-type"], (path, response.headers["content-type"])
        base = Path(path).parent
        pending.extend(_normalise(base, target) for target in IMPORT.findall(response.text))
    on_disk = {p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*.js")}
    assert seen == on_disk, f"modules never imported: {on_disk - seen}"


def _normalise(base: Path, target: str) -> str:
    parts: list[str] = [p for p in base.as_posix().split("/") if p and p != "."]
    for part in target.split("/"):
        if part == "..":
            parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return "/".join(parts)


def test_no_asset_comes_from_another_host() -> None:
    for path in STATIC_DIR.rglob("*"):
        if path.is_file():
            urls = set(URL.findall(path.read_text())) - ALLOWED_URLS
            assert not urls, f"{path.relative_to(STATIC_DIR)} refers to {urls}: the service may have no internet"


def test_the_pages_call_only_the_public_api() -> None:
    """Every API path in the modules is under v1/ (or the OpenAPI document): no private endpoints."""
    sources = "\n".join(p.read_text() for p in STATIC_DIR.rglob("*.js"))
    paths = re.findall(r"""(?<![\w.])(?:get|post|getAll|download|apiUrl|followEvents)\(\s*[`'"]([^`'"]+)""", sources)
    assert paths and all(p.startswith(("v1/", "openapi.json")) for p in paths), paths
