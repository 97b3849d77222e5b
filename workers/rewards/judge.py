"""LLM-as-judge rewards: a model scores (judge_score) or labels (judge_label) each completion.

The judge is an OpenAI-compatible chat endpoint (POST {base_url}/chat/completions) or a model this
service serves (POST {inference worker}/generate with the resolved model spec); which one, with what
key, is decided outside this package by a JudgeResolver (workers/judges.py: tenancy, secrets).

Service levels as the http reward's: a deadline per call, retries with exponential backoff after
connection errors, timeouts, 408, 429 and 5xx, at most max_concurrency calls in flight, and failures
counted against max_error_rate by the scorer. Answers are parsed strictly: a score is a number and
nothing else, inside [min_score, max_score]; a label is one of the labels; a group answer is a JSON array
with one such number per completion. Anything else is an error (the reward's on_error decides).
Answers are cached per (judge, messages) for the leaf's life, i.e. within a job.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.schemas.judge import PLACEHOLDER, JudgeModel
from workers.rewards.components import Leaf, Outcome
from workers.rewards.detectors import quantile
from workers.rewards.errors import RewardConfigError

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
_NUMBER = re.compile(r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)\s*")


@dataclass(frozen=True)
class JudgeTarget:
    """Where the judge's calls go: 'openai' (url = API root) or 'service' (url = inference worker)."""

    kind: str
    url: str
    model: str
    headers: dict[str, str] = field(default_factory=dict)
    service_spec: dict[str, Any] | None = None
    # Called once per scored batch with (prompt tokens, completion tokens) of its calls, when there were any
    # (the worker records a service judge's tokens as the tenant's inference usage).
    on_usage: Callable[[int, int], None] | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.url}:{self.model}:{json.dumps(self.service_spec, sort_keys=True)}"


JudgeResolver = Callable[[JudgeModel], JudgeTarget]


class _Retryable(Exception):
    pass


def render(template: str, prompt: str, completion: str, row: dict[str, Any], completions: str = "") -> str:
    """Fill {{prompt}}, {{completion}}, {{completions}}, {{row.<field>}}; a missing row field is an error."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("row."):
            key = name[4:]
            if key not in row:
                raise KeyError(f"the prompt template uses {{{{{name}}}}} but the row has no field {key!r}")
            item = row[key]
            return item if isinstance(item, str) else json.dumps(item)
        return {"prompt": prompt, "completion": completion, "completions": completions}[name]

    return PLACEHOLDER.sub(value, template)


def parse_score(text: str, low: float, high: float) -> float:
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"the judge answered {text[:80]!r}, not a number in [{low:g}, {high:g}]")
    score = float(text)
    if not low <= score <= high:
        raise ValueError(f"the judge answered {score:g}, outside [{low:g}, {high:g}]")
    return score


def parse_label(text: str, labels: list[str], passing: list[str]) -> float:
    answer = text.strip().casefold()
    if answer not in {label.strip().casefold() for label in labels}:
        raise ValueError(f"the judge answered {text[:80]!r}, not one of {labels}")
    return 1.0 if answer in {p.strip().casefold() for p in passing} else 0.0


def parse_group(text: str, count: int, low: float, high: float) -> list[float]:
    try:
        scores = json.loads(text)
    except ValueError:
        raise ValueError(f"the judge answered {text[:80]!r}, not a JSON array of {count} numbers") from None
    if not isinstance(scores, list) or len(scores) != count:
        raise ValueError(f"the judge answered {text[:80]!r}, not a JSON array of {count} numbers")
    checked = []
    for score in scores:
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise ValueError(f"the judge's array holds {score!r}, not a number")
        if not low <= score <= high:
            raise ValueError(f"the judge answered {score:g}, outside [{low:g}, {high:g}]")
        checked.append(float(score))
    return checked


class JudgeLeaf(Leaf):
    def __init__(self, name: str, spec: Any, resolver: JudgeResolver | None, group_size: int | None) -> None:
        super().__init__(name, spec)
        # Without a resolver (the API checking a reward definition) the leaf builds but cannot call a
        # judge: every completion is an error saying so. A job's worker always passes one.
        self.target = resolver(spec.judge) if resolver is not None else None
        self.group_size = group_size
        if self.target is not None and getattr(spec, "group", False) and not group_size:
            raise RewardConfigError(
                f"reward {name!r}: group judging needs groups (training rewards); evaluation rewards cannot use it",
                param="group",
            )
        limits = httpx.Limits(max_connections=spec.max_concurrency, max_keepalive_connections=spec.max_concurrency)
        headers = self.target.headers if self.target is not None else {}
        self._client = httpx.Client(timeout=spec.timeout_s, limits=limits, headers=headers)
        self._executor = ThreadPoolExecutor(max_workers=spec.max_concurrency, thread_name_prefix=f"judge-{name}")
        self._cache: dict[str, tuple[str, int, int]] = {}  # messages -> (answer, prompt tokens, completion tokens)
        self._lock = threading.Lock()
        self._step: dict[str, Any] = {}
        self._reset_step()

    # -- scoring --------------------------------------------------------------------------------------
    def score(self, prompts: list[str], completions: list[str], rows: list[dict[str, Any]]) -> list[Outcome]:
        self._reset_step()
        if self.target is None:
            return [Outcome(error="judge rewards are scored by a job's worker, not here") for _ in completions]
        try:
            return self._score(prompts, completions, rows)
        finally:
            step = self._step
            if self.target.on_usage is not None and step["calls"]:
                self.target.on_usage(step["prompt_tokens"], step["completion_tokens"])

    def _score(self, prompts: list[str], completions: list[str], rows: list[dict[str, Any]]) -> list[Outcome]:
        if getattr(self.spec, "group", False):
            return self._score_groups(prompts, completions, rows)
        asks = []
        for prompt, completion, row in zip(prompts, completions, rows, strict=True):
            try:
                asks.append(self._messages(prompt, completion, row))
            except KeyError as error:
                asks.append(error)
        answers = self._ask_all([a for a in asks if not isinstance(a, Exception)])
        outcomes = []
        for ask in asks:
            if isinstance(ask, Exception):
                outcomes.append(Outcome(error=str(ask.args[0])))
                continue
            text, error, latency = answers[_key(ask)]
            outcomes.append(self._outcome(text, error, latency))
        return outcomes

    def _score_groups(self, prompts: list[str], completions: list[str], rows: list[dict[str, Any]]) -> list[Outcome]:
        size = self.group_size or 1
        groups = [range(i, min(i + size, len(completions))) for i in range(0, len(completions), size)]
        asks = []
        for group in groups:
            listed = "\n".join(f"{n}. {completions[i]}" for n, i in enumerate(group, start=1))
            asks.append(self._messages(prompts[group[0]], "", rows[group[0]], listed))
        answers = self._ask_all(asks)
        outcomes: list[Outcome] = []
        for group, ask in zip(groups, asks, strict=True):
            text, error, latency = answers[_key(ask)]
            if error is None:
                try:
                    scores = parse_group(text or "", len(group), self.spec.min_score, self.spec.max_score)
                    outcomes += [Outcome(value=self._normalized(s), latency_s=latency) for s in scores]
                    continue
                except ValueError as parse_error:
                    error = str(parse_error)
            outcomes += [Outcome(error=error, latency_s=latency) for _ in group]
        return outcomes

    def _outcome(self, text: str | None, error: str | None, latency: float) -> Outcome:
        if error is not None:
            return Outcome(error=error, latency_s=latency)
        try:
            if self.spec.type == "judge_label":
                value = parse_label(text or "", self.spec.labels, self.spec.passing)
            else:
                value = self._normalized(parse_score(text or "", self.spec.min_score, self.spec.max_score))
        except ValueError as parse_error:
            return Outcome(error=str(parse_error), latency_s=latency)
        return Outcome(value=value, latency_s=latency)

    def _normalized(self, score: float) -> float:
        if not self.spec.normalize:
            return score
        return (score - self.spec.min_score) / (self.spec.max_score - self.spec.min_score)

    def _messages(self, prompt: str, completion: str, row: dict[str, Any], listed: str = "") -> list[dict[str, str]]:
        messages = []
        if self.spec.system:
            messages.append({"role": "system", "content": render(self.spec.system, prompt, completion, row, listed)})
        messages.append({"role": "user", "content": render(self.spec.prompt, prompt, completion, row, listed)})
        return messages

    # -- calls ----------------------------------------------------------------------------------------
    def _ask_all(self, asks: list[list[dict[str, str]]]) -> dict[str, tuple[str | None, str | None, float]]:
        """Each distinct question once (cached ones not at all), at most max_concurrency at a time."""
        unique = {_key(a): a for a in asks}
        results: dict[str, tuple[str | None, str | None, float]] = {}
        todo = []
        for key, messages in unique.items():
            with self._lock:
                cached = self._cache.get(key)
            if cached is not None:
                results[key] = (cached[0], None, 0.0)
                self._step["cache_hits"] += 1
            else:
                todo.append((key, messages))
        for key, result in zip([k for k, _ in todo], self._executor.map(lambda t: self._call(*t), todo), strict=True):
            results[key] = result
        return results

    def _call(self, key: str, messages: list[dict[str, str]]) -> tuple[str | None, str | None, float]:
        started = time.perf_counter()
        try:
            text, prompt_tokens, completion_tokens = self._with_retries(messages)
        except Exception as exc:  # noqa: BLE001 - every failure becomes this item's error
            return None, f"judge {self.spec.judge.model}: {exc}"[:1000], time.perf_counter() - started
        latency = time.perf_counter() - started
        with self._lock:
            self._cache[key] = (text, prompt_tokens, completion_tokens)
            step = self._step
            step["calls"] += 1
            step["prompt_tokens"] += prompt_tokens
            step["completion_tokens"] += completion_tokens
            step["latencies"].append(latency)
        return text, None, latency

    def _with_retries(self, messages: list[dict[str, str]]) -> tuple[str, int, int]:
        attempt = 0
        while True:
            try:
                return self._request(messages)
            except _Retryable as exc:
                if attempt >= self.spec.retries:
                    raise RuntimeError(f"{exc} (after {attempt + 1} attempts)") from None
                time.sleep(min(self.spec.backoff_s * 2**attempt, self.spec.backoff_max_s))
                attempt += 1

    def _request(self, messages: list[dict[str, str]]) -> tuple[str, int, int]:
        judge, target = self.spec.judge, self.target
        assert target is not None  # score() returns early without one
        knobs = {"messages": messages, "temperature": judge.temperature, "max_tokens": judge.max_tokens}
        if target.kind == "service":
            url, body = f"{target.url}/generate", {"model": target.service_spec, **knobs}
        else:
            url, body = f"{target.url}/chat/completions", {"model": target.model, **knobs}
        try:
            response = self._client.post(url, json=body)
        except httpx.TimeoutException:
            raise _Retryable(f"timed out after {self.spec.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"cannot reach the judge: {type(exc).__name__}") from None
        if response.status_code in RETRY_STATUS:
            raise _Retryable(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]!r}")
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["text"] if target.kind == "service" else choice["message"]["content"]
            usage = data.get("usage") or {}
            return str(text), int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        except (ValueError, KeyError, IndexError, TypeError):
            raise RuntimeError(f"not a chat completion: {response.text[:200]!r}") from None

    # -- bookkeeping ----------------------------------------------------------------------------------
    def _reset_step(self) -> None:
        with self._lock:
            self._step = {"calls": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "latencies": []}

    def step_metrics(self) -> dict[str, float]:
        """This step's judge calls, cache hits, tokens and call latency p50/p95 (reward/<name>/judge_*)."""
        step, prefix = self._step, f"reward/{self.name}/judge"
        return {
            f"{prefix}_calls": float(step["calls"]),
            f"{prefix}_cache_hits": float(step["cache_hits"]),
            f"{prefix}_prompt_tokens": float(step["prompt_tokens"]),
            f"{prefix}_completion_tokens": float(step["completion_tokens"]),
            f"{prefix}_latency_p50_s": quantile(step["latencies"], 0.5),
            f"{prefix}_latency_p95_s": quantile(step["latencies"], 0.95),
        }

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._client.close()


def _key(messages: list[dict[str, str]]) -> str:
    return json.dumps(messages, sort_keys=True)
