"""The job page's "Try it" panel in headless Chromium: one prompt streamed to the base model and to the
job's latest checkpoint, side by side (skips without Chromium, like the other browser tests)."""

from typing import Any

import httpx
import pytest

from scripts.stack import Stack
from tests.integration.helpers import tiny_job, wait_for
from tests.web.test_dashboard_browser import sign_in

try:
    from playwright.sync_api import Page, expect
except ImportError:
    Page = Any  # type: ignore[assignment,misc]

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def test_try_it_streams_one_prompt_to_the_base_model_and_the_checkpoint(
    page: Page, api_key: str, web_stack: Stack
) -> None:
    with httpx.Client(base_url=web_stack.base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as api:
        job = api.post("/v1/jobs", json=tiny_job(max_steps=3, name="try-it")).raise_for_status().json()
        wait_for(api, job["id"], until={"succeeded"})
    sign_in(page, api_key)
    page.goto(f"/dashboard/#/jobs/{job['id']}")
    expect(page.locator("#try-model-0")).to_have_value("tiny-demo")
    expect(page.locator("#try-model-1")).to_have_value(f"{job['id']}:latest")
    page.fill("#try-prompt", "copy 3:")
    page.fill("#try-max-tokens", "4")
    page.click("#try-send")
    for column in (0, 1):
        expect(page.locator(f"#try-note-{column}")).to_contain_text("finish:", timeout=30_000)
    # A model id nobody has: the column shows the API's error instead of an answer.
    page.locator("#try-model-0").evaluate("(s) => { s.add(new Option('nope', 'nope')); s.value = 'nope'; }")
    page.click("#try-send")
    expect(page.locator("#try-note-0 .error")).to_contain_text("does not exist")
    expect(page.locator("#try-note-1")).to_contain_text("finish:", timeout=30_000)
