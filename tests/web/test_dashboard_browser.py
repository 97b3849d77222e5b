"""End to end in headless Chromium: sign in, submit a tiny job in the form, watch it train live over the
SSE stream (resuming with Last-Event-ID), see it succeed with checkpoints and evaluations, cancel a
running job, see alerts highlighted, errors inline in the form, and the reward playground score samples."""

import json
import re
import tarfile
import time
from typing import Any

import httpx
import pytest

from scripts.stack import Stack
from tests.utils.live import ARTIFACTS, tiny_job, wait_for

try:
    from playwright.sync_api import Page, Route, expect
except ImportError:  # the browser fixture skips (or fails under GRPO_REQUIRE_SERVICES=1) with the reason
    Page = Route = Any  # type: ignore[assignment,misc]

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

EVAL_ROWS = [{"prompt": f"{d}+1=", "answer": str(d + 1)} for d in (1, 4, 7)]


def shot(page: Page, name: str, *, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=full_page)


def sign_in(page: Page, key: str) -> None:
    page.goto("/dashboard/")
    page.fill("#api-key", key)
    page.click("#login-form button[type=submit]")
    expect(page.locator("main h1")).to_have_text("Jobs")


def field(page: Page, path: str, control: str = "input, textarea, select") -> Any:
    """The input of the form field named like the API names it (e.g. 'grpo.group_size')."""
    return page.locator(f'[data-field="{path}"]').locator(control).first


def field_error(page: Page, path: str) -> Any:
    return page.locator(f'[data-field="{path}"] > .field-error')


def api_client(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_sign_in_refuses_a_wrong_key_and_keeps_the_right_one_for_the_session(page: Page, api_key: str) -> None:
    page.goto("/")  # the root redirects to the dashboard
    expect(page.locator("#login-form")).to_be_visible()
    page.fill("#api-key", "grpo_not-a-key")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-form .error")).to_contain_text("not accepted")
    shot(page, "login-refused")
    page.fill("#api-key", api_key)
    page.click("#login-form button[type=submit]")
    expect(page.locator("main h1")).to_have_text("Jobs")
    assert page.evaluate("sessionStorage.getItem('grpo.apiKey')") == api_key
    assert page.evaluate("localStorage.getItem('grpo.apiKey')") is None
    page.click("#sign-out")
    expect(page.locator("#login-form")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('grpo.apiKey')") is None


def test_the_form_checks_the_schema_first_and_shows_the_apis_errors_next_to_fields(
    page: Page, api_key: str, web_stack: Stack
) -> None:
    sign_in(page, api_key)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/v1/jobs") else None)
    page.goto("/dashboard/#/new")
    field(page, "name").fill("web-invalid")

    # Bounds from the OpenAPI schema are checked before anything is sent.
    field(page, "grpo.group_size").fill("1")
    page.click("#submit-job")
    expect(field_error(page, "grpo.group_size")).to_contain_text("≥ 2")
    assert posts == []

    # A cross-field rule only the server knows: its problem document names the field.
    field(page, "grpo.group_size").fill("4")
    field(page, "grpo.max_steps").fill("3")
    page.click("text=All GRPO settings")
    field(page, "grpo.warmup_steps").fill("100")
    page.click("#submit-job")
    expect(field_error(page, "grpo.warmup_steps")).to_contain_text("exceeds")
    expect(page.locator("#form-errors")).to_contain_text("The API refused the job")
    assert len(posts) == 1
    shot(page, "new-job-errors")

    # An error inside a JSON field lands on that field, with its full path.
    field(page, "grpo.warmup_steps").fill("0")
    field(page, "rewards").fill('[{"type": "exact_match", "field": "answer", "weight": 1000}]')
    page.click("#submit-job")
    expect(field_error(page, "rewards")).to_contain_text("rewards[0].weight")
    expect(field_error(page, "grpo.warmup_steps")).to_be_empty()

    with api_client(web_stack, api_key) as api:
        assert api.get("/v1/jobs", params={"name": "web-invalid"}).json()["data"] == []


def _resume_probe(page: Page, api: httpx.Client) -> list[str | None]:
    """Cut the first event stream after its first event, so the page must reconnect; record Last-Event-ID."""
    seen: list[str | None] = []

    def handle(route: Route) -> None:
        seen.append(route.request.headers.get("last-event-id"))
        if len(seen) > 1:
            route.continue_()
            return
        job_id = re.search(r"/v1/jobs/([0-9a-f-]{36})/events", route.request.url).group(1)  # type: ignore[union-attr]
        first = api.get(f"/v1/jobs/{job_id}/events", params={"limit": 1}).json()["data"][0]
        body = f"id: {first['id']}\r\nevent: {first['type']}\r\ndata: {json.dumps(first)}\r\n\r\n"
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    page.route("**/v1/jobs/*/events", handle)
    return seen


def _watch(page: Page, timeout_s: float = 180) -> list[tuple[str, int]]:
    """(status, points on the reward chart) every 100 ms until the job has ended."""
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = page.get_attribute(".job-head [data-status]", "data-status") or ""
        seen.append((status, int(page.get_attribute('[data-chart="reward"] svg', "data-points") or 0)))
        if status in ("succeeded", "failed", "cancelled"):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"the job page never showed an ended job: {seen[-5:]}")


def test_a_job_from_the_form_trains_live_and_succeeds_with_checkpoints_and_evaluations(
    page: Page, api_key: str, web_stack: Stack
) -> None:
    sign_in(page, api_key)
    page.goto("/dashboard/#/new")
    field(page, "name").fill("web-tiny")  # the demo job's rows and numeric_match reward are the form's defaults
    grpo = {"group_size": 4, "prompts_per_step": 2, "max_steps": 12, "max_new_tokens": 4, "learning_rate": "1e-3"}
    for name, value in {**grpo, "seed": 3}.items():
        field(page, f"grpo.{name}").fill(str(value))
    field(page, "checkpoint.every").fill("6")
    page.click("text=Evaluation, safeguards, initial weights")
    field(page, "eval").fill(json.dumps({"dataset": {"rows": EVAL_ROWS}, "every": 6}))
    page.click("#submit-job")
    expect(page).to_have_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    job_id = page.url.rsplit("/", 1)[1]
    observed = _watch(page)
    with api_client(web_stack, api_key) as api:
        job = wait_for(api, job_id)
    assert job["status"] == "succeeded", job["error"]

    # The page followed the job live: it showed it unfinished, then succeeded, without a reload.
    statuses = [status for status, _ in observed]
    assert statuses[0] in ("queued", "running") and statuses[-1] == "succeeded", statuses
    expect(page.locator('[data-chart="reward"] svg')).to_have_attribute("data-points", "12")
    expect(page.locator('[data-chart="reward"] path.band')).to_have_count(1)
    expect(page.locator("#stream-state")).to_have_text("finished")
    expect(page.locator(".job-progress")).to_contain_text("12 / 12")
    expect(page.locator('#checkpoints tr[data-step="12"]')).to_be_visible()
    expect(page.locator("#evaluations tbody tr")).to_have_count(3)  # steps 0, 6, 12
    expect(page.locator("#evaluations tbody")).not_to_contain_text("failed")
    expect(page.locator("#sample-step")).to_have_value("12")
    expect(page.locator("#samples tr.sample").first).to_contain_text("1=")
    page.click("#sample-prev")
    expect(page.locator("#sample-step")).to_have_value("11")
    expect(page.locator("#samples tr.sample").first).to_contain_text("numeric_match")
    expect(page.locator("#spec")).to_contain_text('"web-tiny"')
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "job-page")
    shot(page, "job-page-full", full_page=True)

    with page.expect_download() as download:
        page.click('#checkpoints tr[data-step="12"] button.download')
    with tarfile.open(download.value.path()) as archive:
        names = archive.getnames()
    assert f"{job_id}-step000012/config.json" in names, names

    page.click("text=Clone")  # the form, filled from the job's spec
    expect(field(page, "name")).to_have_value("web-tiny-copy")
    expect(field(page, "grpo.max_steps")).to_have_value("12")
    expect(page.locator("#spec-preview")).to_contain_text('"every": 6')

    page.goto("/dashboard/#/jobs")
    page.fill("#filter-name", "web-tiny")
    row = page.locator(f'#jobs-body tr[data-job-id="{job_id}"]')
    expect(row.locator("[data-status]")).to_have_text("succeeded")
    expect(row).to_contain_text("12 / 12")
    expect(row.locator("svg.sparkline")).to_have_attribute("data-points", "12")
    shot(page, "jobs-list")
    page.select_option("#filter-status", "failed")
    expect(page.locator("#jobs-body tr")).to_have_count(0)
    expect(page.locator("#jobs-notice")).to_contain_text("No jobs match")


def _points(page: Page) -> int:
    return int(page.get_attribute('[data-chart="reward"] svg', "data-points") or 0)


def test_a_running_job_charts_live_resumes_its_stream_shows_alerts_and_can_be_cancelled(
    page: Page, api_key: str, web_stack: Stack
) -> None:
    # Near-greedy sampling makes a group's completions identical: the identical_completions detector fires.
    spec = tiny_job(max_steps=500, grpo={"temperature": 0.05}, safeguards={"window": 2}, name="web-alerts")
    with api_client(web_stack, api_key) as api:
        job = api.post("/v1/jobs", json=spec).raise_for_status().json()
        sign_in(page, api_key)
        resumes = _resume_probe(page, api)
        page.goto(f"/dashboard/#/jobs/{job['id']}")
        status = page.locator(".job-head [data-status]")

        # The reward chart gains points while the job runs.
        expect(status).to_have_text("running", timeout=60_000)
        expect(page.locator('[data-chart="reward"] svg')).not_to_have_attribute("data-points", "0", timeout=60_000)
        first = _points(page)
        deadline = time.monotonic() + 60
        while _points(page) < first + 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _points(page) >= first + 3 and status.text_content() == "running", (first, _points(page))
        # The stream cut after its first event was resumed from that event's id.
        assert resumes[0] is None and resumes[1] is not None and int(resumes[1]) >= 1, resumes

        expect(page.locator('#alerts .alert[data-code="identical_completions"]')).to_be_visible(timeout=60_000)
        expect(page.locator('[data-chart="reward"] line.marker').first).to_be_attached()
        shot(page, "job-alerts")
        page.click("#cancel-job")
        # The header is redrawn on every refresh while the job runs; the open confirmation must survive it.
        confirm = page.locator("#confirm-cancel")

        def step() -> int:
            return int(api.get(f"/v1/jobs/{job['id']}").json()["progress"]["step"])

        first_step, deadline = step(), time.monotonic() + 30
        while step() < first_step + 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        page.wait_for_timeout(1500)  # past the page's 1 s refresh throttle
        expect(confirm).to_be_visible()
        confirm.click()
        expect(status).to_have_text("cancelled", timeout=60_000)
        done = api.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "cancelled" and done["progress"]["step"] < 500
    expect(page.locator("#cancel-controls button")).to_have_count(0)


def test_the_reward_playground_scores_pasted_samples(page: Page, api_key: str) -> None:
    sign_in(page, api_key)
    page.goto("/dashboard/#/playground")
    page.click("#score")  # the example: exact_match on three samples
    expect(page.locator("#playground-results td.total")).to_have_text(["1", "1", "0"])
    expect(page.locator("#playground-summary")).to_contain_text("0.667")

    code = "def reward(prompt, completion, row):\n    return len(completion) / 10\n"
    field(page, "reward").fill(json.dumps({"type": "python", "name": "length", "code": code}))
    field(page, "samples").fill('{"completion": "abc"}\n{"completion": "abcdefgh"}')
    page.click("#score")
    expect(page.locator("#playground-results td.total")).to_have_text(["0.3", "0.8"])
    expect(page.locator("#playground-results thead")).to_contain_text("length")
    shot(page, "playground", full_page=True)

    field(page, "reward").fill('{"type": "regex", "pattern": "("}')
    page.click("#score")
    expect(field_error(page, "reward")).to_contain_text("reward.pattern")
    expect(page.locator("#playground-output")).to_be_empty()


def test_the_stream_parser_handles_events_split_anywhere(page: Page, api_key: str) -> None:
    sign_in(page, api_key)
    events = page.evaluate(
        """async () => {
            const { createParser } = await import('./js/sse.js');
            const events = [];
            const parser = createParser((event) => events.push(event));
            for (const chunk of ['id: 7\\r', '\\nevent: metrics\\r\\ndata: {"a"', ':1}\\r\\n\\r', '\\n: ping\\n\\n',
                                 'data: one\\ndata: two\\n\\n', 'retry: 5\\nid: 9\\nevent: status\\ndata:x\\n\\n']) {
                parser.feed(chunk);
            }
            return events;
        }"""
    )
    assert events == [
        {"type": "metrics", "data": '{"a":1}', "id": "7"},
        {"type": "message", "data": "one\ntwo", "id": "7"},
        {"type": "status", "data": "x", "id": "9"},
    ]
