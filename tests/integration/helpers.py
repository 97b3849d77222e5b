import time

import httpx

TERMINAL = {"succeeded", "failed", "cancelled"}


def wait_for(
    client: httpx.Client, job_id: str, *, until: set[str] = TERMINAL, min_step: int = 0, timeout_s: float = 240
) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["status"] in until and job["progress"]["step"] >= min_step:
            return job
        if job["status"] in TERMINAL and job["status"] not in until:
            raise AssertionError(f"job ended {job['status']}: {job['error']}")
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} did not reach {until} (step >= {min_step}) in {timeout_s} s: {job}")


def all_metrics(client: httpx.Client, job_id: str) -> dict[int, dict[str, float]]:
    rows, cursor = {}, None
    while True:
        params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"/v1/jobs/{job_id}/metrics", params=params).raise_for_status().json()
        rows.update({row["step"]: row["values"] for row in page["data"]})
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def tiny_job(max_steps: int = 6, **overrides: object) -> dict:
    spec = {
        "name": "integration",
        "model": {"source": "tiny-demo"},
        "dataset": {"rows": [{"prompt": f"copy {d}:", "answer": str(d)} for d in range(10)]},
        "rewards": [{"type": "exact_match", "field": "answer"}],
        "grpo": {
            "group_size": 4,
            "prompts_per_step": 2,
            "max_steps": max_steps,
            "max_new_tokens": 4,
            "learning_rate": 1e-3,
            "seed": 3,
        },
        "checkpoint": {"every": 3, "keep_last": 2},
    }
    for key, value in overrides.items():  # dict sections are merged, anything else replaced
        current = spec.get(key)
        spec[key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
    return spec
