"""The README demo: start API + worker, submit the demo GRPO job over HTTP, show it learn.

./run.sh demo               # installs, then runs this
./run.sh demo --keep        # leave the service up afterwards for curl, the dashboard and /docs
"""

import argparse
import sys
import time
from pathlib import Path

import httpx

from scripts.stack import PROJECT_ROOT, admin, free_port, port_is_free, running_stack
from workers.demo import demo_spec

PRINT_EVERY = 20  # steps between progress lines when stdout is not a terminal
SHOWN = [  # (label, metric, format)
    ("reward", "reward/mean", ".3f"),
    ("std", "reward/std", ".3f"),
    ("kl", "kl", ".3f"),
    ("loss", "loss", "+.4f"),
    ("tok/s", "throughput/tokens_per_s", ".0f"),
]


def create_key(env: dict[str, str]) -> str:
    return admin(env, "create-key", "--tenant", "demo", "--name", "demo")


def progress_line(job: dict) -> str:
    progress, metrics = job["progress"], job["latest_metrics"]
    width = 30
    filled = int(width * progress["fraction"])
    bar = "#" * filled + "-" * (width - filled)
    shown = "  ".join(f"{label} {metrics[name]:{spec}}" for label, name, spec in SHOWN if name in metrics)
    eta = f"  eta {progress['eta_seconds']:.0f}s" if progress["eta_seconds"] else ""
    return f"[{bar}] {progress['step']:>4}/{progress['total_steps']}  {shown}{eta}"


def follow(client: httpx.Client, job_id: str) -> dict:
    """Print progress until the job ends; one line per update when not on a terminal."""
    interactive = sys.stdout.isatty()
    last_step, last_printed = -1, -PRINT_EVERY
    while True:
        job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        step = job["progress"]["step"]
        if step != last_step:
            last_step = step
            line = progress_line(job)
            if interactive:
                sys.stdout.write("\r" + line.ljust(120))
                sys.stdout.flush()
            elif step - last_printed >= PRINT_EVERY or job["status"] != "running":
                last_printed = step
                print(line, flush=True)
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if interactive:
                print()
            return job
        time.sleep(0.5)


def reward_summary(client: httpx.Client, job_id: str, window: int = 10) -> tuple[float, float]:
    rows = client.get(f"/v1/jobs/{job_id}/metrics", params={"name": "reward/mean", "limit": 1000}).json()["data"]
    rewards = [row["values"]["reward/mean"] for row in rows]
    first, last = rewards[:window], rewards[-window:]
    return sum(first) / len(first), sum(last) / len(last)


def closing_note(base_url: str, key: str, job_id: str, *, keep_running: bool) -> str:
    """What to try next. A curl only while the service it points at is up; otherwise how to get one."""
    if keep_running:
        return (
            f"API key for this local service: {key}\nTry: curl -H 'Authorization: Bearer {key}' "
            f"'{base_url}/v1/jobs/{job_id}/metrics?name=reward/mean'"
        )
    return (
        "The demo's API and worker stop now. To keep them up, to query the job over HTTP and to open the\n"
        "dashboard (/dashboard/) and the API docs (/docs), run:  ./run.sh demo --keep"
    )


def ask_models(client: httpx.Client, job_id: str, prompts: list[str]) -> None:
    """The trained checkpoint beside the base model, through the OpenAI-compatible chat endpoint."""
    print("\nGreedy answers via POST /v1/chat/completions (base model | trained checkpoint):")
    for prompt in prompts:
        answers = []
        for model in ("tiny-demo", f"{job_id}:latest"):
            messages = [{"role": "user", "content": prompt}]
            body = {"model": model, "messages": messages, "max_tokens": 3, "temperature": 0}
            response = client.post("/v1/chat/completions", json=body)
            answers.append(
                response.json()["choices"][0]["message"]["content"] if response.status_code == 200 else response.text
            )
        print(f"  {prompt!r:>12}  ->  {answers[0]!r:>6} | {answers[1]!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT / ".grpo" / "demo")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--keep", "--keep-running", dest="keep_running", action="store_true", help="leave API and worker running"
    )
    args = parser.parse_args()

    port = args.port if port_is_free(args.port) else free_port()
    started = time.monotonic()
    print(f"Starting the API on http://127.0.0.1:{port} and a Celery worker (logs in {args.data_dir / 'logs'}) ...")
    with running_stack(args.data_dir, port=port) as stack:
        key = create_key(stack.env)
        client = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        job = client.post("/v1/jobs", json=demo_spec()).raise_for_status().json()
        print(f"Submitted demo job {job['id']} ({job['spec']['name']}); following it:")
        job = follow(client, job["id"])
        if job["status"] != "succeeded":
            print(f"The demo job ended {job['status']}: {job['error']}", file=sys.stderr)
            return 1
        before, after = reward_summary(client, job["id"])
        print(f"Mean reward, first 10 steps: {before:.2f}  ->  last 10 steps: {after:.2f}")
        print(f"Done in {time.monotonic() - started:.0f} s (service start included).")
        spec = demo_spec()
        rows = spec["dataset"]["rows"][:4]
        ask_models(client, job["id"], [str(row[spec["dataset"].get("prompt_field", "prompt")]) for row in rows])
        print("\n" + closing_note(stack.base_url, key, job["id"], keep_running=args.keep_running))
        if args.keep_running:
            print(f"\nService running at {stack.base_url} (docs at {stack.base_url}/docs); Ctrl-C to stop.")
            try:
                while stack.api.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
