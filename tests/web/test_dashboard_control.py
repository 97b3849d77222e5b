"""The job page's pause and resume buttons and usage line, in headless Chromium against a real stack."""

import pytest

from scripts.stack import Stack
from tests.integration.helpers import tiny_job
from tests.web.test_dashboard_browser import api_client, shot, sign_in

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the browser fixture skips (or fails under GRPO_REQUIRE_SERVICES=1) with the reason
    Page = object  # type: ignore[assignment,misc]

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def test_pause_and_resume_buttons_and_usage(page: Page, api_key: str, web_stack: Stack) -> None:
    with api_client(web_stack, api_key) as api:
        job = api.post("/v1/jobs", json=tiny_job(max_steps=400, name="web-pause")).raise_for_status().json()
        sign_in(page, api_key)
        page.goto(f"/dashboard/#/jobs/{job['id']}")
        status = page.locator(".job-head [data-status]")
        expect(status).to_have_text("running", timeout=60_000)
        expect(page.locator("#job-usage")).to_contain_text("tokens sampled", timeout=30_000)
        page.click("#pause-job")
        expect(status).to_have_text("paused", timeout=60_000)
        expect(page.locator("#resume-job")).to_be_visible()
        paused = api.get(f"/v1/jobs/{job['id']}").json()
        assert paused["status"] == "paused" and paused["usage"]["generated_tokens"] > 0
        shot(page, "job-paused")
        page.click("#resume-job")
        expect(status).to_have_text("running", timeout=60_000)
        expect(page.locator("#pause-job")).to_be_visible()
        api.post(f"/v1/jobs/{job['id']}/cancel").raise_for_status()
        expect(status).to_have_text("cancelled", timeout=60_000)
    expect(page.locator("#pause-controls button")).to_have_count(0)
