"""Regenerate the README's dashboard screenshot: run the demo job on a local stack and photograph its page.

python -m scripts.dashboard_screenshot [--out docs/dashboard-job.png]   (needs /usr/bin/chromium + playwright)
"""

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from scripts.browser import CHROMIUM, CHROMIUM_ARGS
from scripts.demo import create_key
from scripts.stack import PROJECT_ROOT, running_stack
from workers.demo import demo_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "dashboard-job.png")
    parser.add_argument("--steps", type=int, default=250)
    args = parser.parse_args()
    spec = demo_spec()
    spec["grpo"]["max_steps"] = args.steps
    spec["checkpoint"]["every"] = 50
    spec["eval"] = {"dataset": {"rows": spec["dataset"]["rows"][::3]}, "every": 50}
    with tempfile.TemporaryDirectory() as data, running_stack(Path(data)) as stack:
        key = create_key(stack.env)
        client = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        job = client.post("/v1/jobs", json=spec).raise_for_status().json()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
            page.goto(f"{stack.base_url}/dashboard/")
            page.fill("#api-key", key)
            page.click("#login-form button[type=submit]")
            page.goto(f"{stack.base_url}/dashboard/#/jobs/{job['id']}")
            # Photograph it while it runs, about two thirds through, so the page shows a live job.
            while client.get(f"/v1/jobs/{job['id']}").json()["progress"]["step"] < args.steps * 2 // 3:
                time.sleep(0.5)
            time.sleep(1.0)  # let the stream deliver the last steps and the charts redraw
            page.screenshot(path=args.out)
            browser.close()
        client.post(f"/v1/jobs/{job['id']}/cancel")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
