"""The dashboard in a real browser: Debian's Chromium (/usr/bin/chromium) driven by Playwright, against a
real stack (uvicorn + a Celery worker on the embedded default). Playwright's own browsers are never used.

Without Chromium or Playwright the browser tests skip, or fail under GRPO_REQUIRE_SERVICES=1 (CI).
Screenshots go to test-artifacts/ (gitignored).
"""

from collections.abc import Iterator
from typing import Any

import pytest

from scripts.browser import CHROMIUM, CHROMIUM_ARGS
from scripts.stack import Stack, admin, running_stack
from tests.utils.live import ARTIFACTS, FAST_HEARTBEAT
from tests.utils.services import skip_or_fail


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        skip_or_fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def web_stack(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # noqa: ARG001
    """One stack for the module; asks for the browser first so a missing Chromium skips before it starts."""
    with running_stack(tmp_path_factory.mktemp("web") / "data", extra_env=FAST_HEARTBEAT) as stack:
        yield stack


@pytest.fixture(scope="module")
def api_key(web_stack: Stack) -> str:
    return admin(web_stack.env, "create-key", "--tenant", "web")


@pytest.fixture
def page(browser: Any, web_stack: Stack, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context per test; errors in the page fail the test, a screenshot is kept."""
    context = browser.new_context(base_url=web_stack.base_url, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    page_errors: list[str] = []
    tab.on("pageerror", lambda error: page_errors.append(str(error)))
    # Console errors too (e.g. a content-security-policy refusal), except the API's own 4xx answers.
    tab.on(
        "console",
        lambda message: (
            message.type == "error"
            and "Failed to load resource" not in message.text
            and page_errors.append(message.text)
        ),
    )
    yield tab
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=ARTIFACTS / f"{request.node.name}-last.png", full_page=True)
    context.close()
    assert not page_errors, f"uncaught errors in the page: {page_errors}"
