"""/docs and /redoc work without internet: every script, style and icon they load comes from this server."""

import re

import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_local_assets_and_those_are_served(client, page):
    html = client.get(page)
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html.text)
    assets += re.findall(r"""url\s*:\s*["']([^"']+)["']""", html.text)  # Swagger UI's openapi url
    assert assets, html.text
    for url in assets:
        assert url.startswith("/"), f"{page} loads {url} from another host"
        assert client.get(url).status_code == 200, url
    assert any(url.endswith(".js") for url in assets)
