"""Inference under load: completion tokens/s and p50/p99 latency for 1, 8 and 32 concurrent requests,
served by one inference worker process (`python -m workers.inference`, dynamic batching), against plain
transformers `generate` on the same prompts in the same run.

    python -m bench.inference_load [--rounds 2] [--out bench/results/inference.json]

Models: the demo model ('tiny-demo', 0.3 MB, character vocabulary, demo prompts) and the reference-size
model of bench/workload.py (~5M parameters, the 'cpu' preset, its prompts). Requests go to the worker's
own /generate (the API's proxy hop is not measured here). Sampling: temperature 1, top_p 1, each request
its own seed, max_tokens 32 (demo) / 64 (reference); both sides stop at EOS, so tokens/s counts the
tokens actually generated. Baselines:
  generate, sequential  one `model.generate` per request in arrival order (a server without batching):
                        a request's latency is the time until its own generate returned
  generate, batched     one `model.generate` over all concurrent prompts (left-padded): every request's
                        latency is that call's time
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench.workload import PRESETS, build_workload, make_prompts
from scripts.stack import free_port, start_inference, stop, wait_inference_ready
from workers.demo import demo_spec
from workers.engine.tiny import build_tiny_model

CONCURRENCY = [1, 8, 32]


@dataclass
class Row:
    model: str
    system: str
    concurrency: int
    tokens_per_s: float
    p50_s: float
    p99_s: float
    completion_tokens: int


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def row(model: str, system: str, c: int, latencies: list[float], tokens: int, wall: float) -> Row:
    return Row(model, system, c, tokens / wall, statistics.median(latencies), percentile(latencies, 0.99), tokens)


async def _served_round(
    url: str, model_dir: str, prompts: list[str], max_tokens: int, seed: int
) -> tuple[list[float], int, float]:
    spec = {"id": "bench", "kind": "base", "source": model_dir}
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(i: int, prompt: str) -> tuple[float, int]:
            started = time.perf_counter()
            body = {"model": spec, "prompt": prompt, "max_tokens": max_tokens, "seed": seed + i}
            answer = (await client.post("/generate", json=body)).raise_for_status().json()
            return time.perf_counter() - started, answer["usage"]["completion_tokens"]

        started = time.perf_counter()
        results = await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
        wall = time.perf_counter() - started
    return [r[0] for r in results], sum(r[1] for r in results), wall


def served(url: str, name: str, model_dir: str, prompts: list[str], max_tokens: int, rounds: int) -> list[Row]:
    asyncio.run(_served_round(url, model_dir, prompts[:1], max_tokens, 0))  # load the model, warm up
    rows = []
    for c in CONCURRENCY:
        latencies, tokens, wall = [], 0, 0.0
        for r in range(rounds):
            lat, tok, w = asyncio.run(_served_round(url, model_dir, prompts[:c], max_tokens, 1000 * r))
            latencies += lat
            tokens += tok
            wall += w
        rows.append(row(name, "inference worker", c, latencies, tokens, wall))
    return rows


@torch.no_grad()
def baseline(name: str, model_dir: str, prompts: list[str], max_tokens: int, rounds: int) -> list[Row]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    kwargs = {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": max_tokens}
    kwargs["pad_token_id"] = tokenizer.pad_token_id

    def generate(batch: list[str]) -> int:
        encoded = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(**encoded, **kwargs)[:, encoded["input_ids"].shape[1] :]
        # tokens before the first EOS, as the worker counts them (a sampled pad token is a token; rows that
        # ended are filled with pad only after their EOS)
        ended = out == tokenizer.eos_token_id
        return int(torch.where(ended.any(1), ended.int().argmax(1), out.shape[1]).sum())

    generate(prompts[:1])  # warm up
    rows = []
    for c in CONCURRENCY:
        seq_lat, seq_tok, seq_wall, bat_lat, bat_tok, bat_wall = [], 0, 0.0, [], 0, 0.0
        for _ in range(rounds):
            started = time.perf_counter()
            for prompt in prompts[:c]:
                seq_tok += generate([prompt])
                seq_lat.append(time.perf_counter() - started)
            seq_wall += time.perf_counter() - started
            started = time.perf_counter()
            bat_tok += generate(prompts[:c])
            took = time.perf_counter() - started
            bat_wall += took
            bat_lat += [took] * c
        rows.append(row(name, "generate, sequential", c, seq_lat, seq_tok, seq_wall))
        rows.append(row(name, "generate, batched", c, bat_lat, bat_tok, bat_wall))
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| model | system | concurrent | tokens/s | p50 s | p99 s |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.system} | {r.concurrency} | {r.tokens_per_s:.0f} | {r.p50_s:.3f} | {r.p99_s:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated concurrent request counts")
    parser.add_argument("--out", type=Path, default=Path("bench/results/inference.json"))
    args = parser.parse_args()
    CONCURRENCY[:] = [int(c) for c in args.concurrency.split(",")]
    work = Path(tempfile.mkdtemp(prefix="inference-bench-"))
    spec = demo_spec()
    demo_prompts = [str(r[spec["dataset"].get("prompt_field", "prompt")]) for r in spec["dataset"]["rows"]]
    models = [
        ("demo (tiny-demo)", str(build_tiny_model(work / "models")), (demo_prompts * 4)[:32], 32),
        ("reference (~5M)", str(build_workload(PRESETS["cpu"], work / "models")), make_prompts(32, 1), 64),
    ]
    env = {**os.environ, "GRPO_DATA_DIR": str(work / "data"), "GRPO_LOG_FORMAT": "text", "PYTHONUNBUFFERED": "1"}
    env["GRPO_INFERENCE_URL"] = url = f"http://127.0.0.1:{free_port()}"
    (work / "data").mkdir()
    rows: list[Row] = []
    worker = start_inference(env, work)
    try:
        wait_inference_ready(env, worker)
        for name, path, prompts, max_tokens in models:
            rows += served(url, name, path, prompts, max_tokens, args.rounds)
    finally:
        stop(worker)
    for name, path, prompts, max_tokens in models:  # the worker is gone: the baseline has the CPU alone
        rows += baseline(name, path, prompts, max_tokens, args.rounds)
    rows.sort(key=lambda r: (r.model, r.concurrency, r.system))
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine}, torch threads {torch.get_num_threads()}")
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"machine": machine, "date": datetime.now(UTC).isoformat(), "rows": [asdict(r) for r in rows]}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
