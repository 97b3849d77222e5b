"""Judge rewards against a stub OpenAI-compatible server: parsing (strict numbers, labels, group arrays),
slow / failing / malformed / out-of-range answers, retries, the concurrency cap, the cache, the counts."""

import json
import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import TypeAdapter

from app.schemas.reward import RewardSpec
from workers.rewards import RewardConfigError, RewardError, build_reward_fn
from workers.rewards.judge import JudgeTarget, parse_group, parse_label, parse_score, render

SPEC = TypeAdapter(RewardSpec)


class Stub:
    """Answers by the completion in the judge prompt: 'slow' sleeps, 'flaky' fails twice with 503, 'broken'
    always 500s, 'malformed' is not a chat completion; otherwise the answer is given by `answers`."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.headers: list[str | None] = []
        self.answers: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def respond(self, body: dict[str, Any], auth: str | None) -> tuple[int, Any]:
        content = body["messages"][-1]["content"]
        with self.lock:
            self.calls.append(body)
            self.headers.append(auth)
            self.attempts[content] = self.attempts.get(content, 0) + 1
            attempt = self.attempts[content]
        if "slow" in content:
            time.sleep(0.6)
        if "flaky" in content and attempt <= 2:
            return 503, {"error": {"message": "busy"}}
        if "broken" in content:
            return 500, {"error": {"message": "down"}}
        if "malformed" in content:
            return 200, {"nothing": "here"}
        if "hold" in content:
            time.sleep(0.2)
        answer = self.answers.get(content, "5")
        message = {"role": "assistant", "content": answer}
        usage = {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}
        return 200, {"object": "chat.completion", "choices": [{"index": 0, "message": message}], "usage": usage}


@pytest.fixture
def stub() -> Iterator[tuple[Stub, str]]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with state.lock:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                status, answer = state.respond(body, self.headers.get("authorization"))
            finally:
                with state.lock:
                    state.in_flight -= 1
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except BrokenPipeError:  # the judge timed out and hung up first: that is the test
                pass

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def judge_spec(url: str, **fields: Any) -> Any:
    spec = {
        "type": "judge_score",
        "judge": {"model": "stub-judge", "base_url": url},
        "prompt": "Rate {{completion}} for {{prompt}}",
        "retries": 2,
        "backoff_s": 0.01,
        "timeout_s": 0.4,
        "max_error_rate": 1.0,
        **fields,
    }
    return SPEC.validate_python(spec)


def reward_fn(spec: Any, url: str, group_size: int | None = None, key: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    def resolve(judge: Any) -> JudgeTarget:
        return JudgeTarget("openai", url, judge.model, headers)

    return build_reward_fn([spec], judges=resolve, http_allow_private=True, group_size=group_size)


def score(fn: Any, completions: list[str], prompt: str = "p", rows: list[dict] | None = None) -> Any:
    return fn([prompt] * len(completions), completions, rows or [{}] * len(completions))


def test_strict_parsers() -> None:
    assert parse_score(" 7 ", 0, 10) == 7.0 and parse_score("2.5\n", 0, 10) == 2.5
    for bad in ["7/10", "Score: 7", "seven", "", "1e1", "nan"]:
        with pytest.raises(ValueError, match="not a number"):
            parse_score(bad, 0, 10)
    with pytest.raises(ValueError, match="outside"):
        parse_score("11", 0, 10)
    assert parse_label(" Correct ", ["correct", "wrong"], ["correct"]) == 1.0
    assert parse_label("wrong", ["correct", "wrong"], ["correct"]) == 0.0
    with pytest.raises(ValueError, match="not one of"):
        parse_label("correct.", ["correct", "wrong"], ["correct"])
    assert parse_group("[1, 2.5, 0]", 3, 0, 10) == [1.0, 2.5, 0.0]
    for bad in ["[1, 2]", "1, 2, 3", "[1, true, 2]", "[1, 2, 30]"]:
        with pytest.raises(ValueError):
            parse_group(bad, 3, 0, 10)


def test_render_fills_row_fields_and_refuses_missing_ones() -> None:
    assert (
        render("{{ prompt }}|{{completion}}|{{row.answer}}|{{row.n}}", "p", "c", {"answer": "a", "n": 3}) == "p|c|a|3"
    )
    with pytest.raises(KeyError, match="no field 'answer'"):
        render("{{row.answer}}", "p", "c", {})


def test_scores_are_normalized_cached_and_counted(stub) -> None:
    state, url = stub
    state.answers = {"Rate good for p": "8", "Rate bad for p": "2"}
    with reward_fn(judge_spec(url), url, key="sk-test") as fn:
        batch = score(fn, ["good", "bad", "good", "good"])
        assert batch.total == pytest.approx([0.8, 0.2, 0.8, 0.8])
        assert len(state.calls) == 2  # one call per distinct question
        assert batch.metrics["reward/judge_score/judge_calls"] == 2
        assert batch.metrics["reward/judge_score/judge_cache_hits"] == 0
        assert batch.metrics["reward/judge_score/judge_prompt_tokens"] == 20
        assert batch.metrics["reward/judge_score/judge_latency_p95_s"] > 0
        again = score(fn, ["good"])  # the next step: answered from the cache
        assert again.total == pytest.approx([0.8]) and len(state.calls) == 2
        assert again.metrics["reward/judge_score/judge_cache_hits"] == 1
    assert state.headers == ["Bearer sk-test"] * 2
    assert state.calls[0]["model"] == "stub-judge" and state.calls[0]["temperature"] == 0.0


def test_malformed_out_of_range_and_failing_answers_follow_the_error_policy(stub) -> None:
    state, url = stub
    state.answers = {"Rate prose for p": "Seven out of ten", "Rate huge for p": "42"}
    spec = judge_spec(url, error_score=-1.0, retries=1)
    with reward_fn(spec, url) as fn:
        results = fn.score_samples(_samples(["prose", "huge", "malformed", "broken", "fine"]))
    assert [r.total for r in results] == [-1.0, -1.0, -1.0, -1.0, 0.5]
    errors = [r.errors.get("judge_score", "") for r in results]
    assert "not a number" in errors[0] and "outside [0, 10]" in errors[1]
    assert "not a chat completion" in errors[2] and "HTTP 500 (after 2 attempts)" in errors[3]
    assert state.attempts["Rate broken for p"] == 2  # retried once, as configured


def test_skip_policy_and_the_max_error_rate_fail_a_step(stub) -> None:
    state, url = stub
    state.answers = {"Rate bad for p": "nope"}
    with reward_fn(judge_spec(url, on_error="skip", max_error_rate=1.0), url) as fn:
        total = score(fn, ["bad", "ok"]).total
        # skipped, and no other component: unscorable (NaN), which the engine leaves out of the group
        assert math.isnan(total[0]) and total[1] == 0.5
    with reward_fn(judge_spec(url, max_error_rate=0.25), url) as fn, pytest.raises(RewardError, match="2 of 3"):
        score(fn, ["bad", "bad", "ok"])


def test_slow_answers_time_out_and_flaky_ones_are_retried(stub) -> None:
    state, url = stub
    with reward_fn(judge_spec(url, timeout_s=0.2, retries=1), url) as fn:
        results = fn.score_samples(_samples(["slow", "flaky"]))
    assert "timed out after 0.2 s (after 2 attempts)" in results[0].errors["judge_score"]
    assert "HTTP 503" in results[1].errors["judge_score"]  # two 503s, one retry: still failing
    with reward_fn(judge_spec(url, retries=2), url) as fn:
        assert score(fn, ["flaky"]).total == [0.5]  # the third attempt answers
    assert state.attempts["Rate flaky for p"] == 3  # two 503s in the first run, then the answer


def test_calls_respect_the_concurrency_cap(stub) -> None:
    state, url = stub
    with reward_fn(judge_spec(url, max_concurrency=2), url) as fn:
        score(fn, [f"hold {i}" for i in range(6)])
    assert len(state.calls) == 6 and state.max_in_flight == 2


def test_label_grader(stub) -> None:
    state, url = stub
    state.answers = {"Is a right? p": "yes", "Is b right? p": "No", "Is c right? p": "maybe"}
    spec = SPEC.validate_python(
        {
            "type": "judge_label",
            "judge": {"model": "m", "base_url": url},
            "prompt": "Is {{completion}} right? {{prompt}}",
            "labels": ["yes", "no"],
            "passing": ["yes"],
            "max_error_rate": 1.0,
        }
    )
    with reward_fn(spec, url) as fn:
        results = fn.score_samples(_samples(["a", "b", "c"]))
    assert [r.components["judge_label"] for r in results] == [1.0, 0.0, 0.0]
    assert "not one of ['yes', 'no']" in results[2].errors["judge_label"]


def test_group_judge_scores_a_group_in_one_call(stub) -> None:
    state, url = stub
    spec = judge_spec(url, prompt="Rank for {{prompt}}:\n{{completions}}", group=True)
    state.answers = {"Rank for p:\n1. x\n2. y\n3. z": "[10, 5, 0]", "Rank for p:\n1. u\n2. v\n3. w": "[1, 2]"}
    with reward_fn(spec, url, group_size=3) as fn:
        results = fn.score_samples(_samples(["x", "y", "z", "u", "v", "w"]))
    assert len(state.calls) == 2
    assert [r.components["judge_score"] for r in results[:3]] == [1.0, 0.5, 0.0]
    assert all("JSON array of 3 numbers" in r.errors["judge_score"] for r in results[3:])


def test_templates_are_checked_when_the_spec_is_parsed() -> None:
    with pytest.raises(ValueError, match="must contain"):
        judge_spec("https://judge.example/v1", prompt="no completion here")
    with pytest.raises(ValueError, match="unknown placeholders"):
        judge_spec("https://judge.example/v1", prompt="{{completion}} {{answer}}")
    with pytest.raises(ValueError, match="use {{prompt}}, {{completions}}"):
        judge_spec("https://judge.example/v1", prompt="{{completion}}", group=True)
    with pytest.raises(ValueError, match="min_score"):
        judge_spec("https://judge.example/v1", min_score=5, max_score=5)
    with pytest.raises(ValueError, match="api_key_secret"):
        SPEC.validate_python(
            {
                "type": "judge_label",
                "judge": {"model": "m", "api_key_secret": "k"},
                "prompt": "{{completion}}",
                "labels": ["a", "b"],
                "passing": ["a"],
            }
        )


def test_private_judge_hosts_are_refused_like_http_verifiers(stub) -> None:
    _, url = stub
    with pytest.raises(RewardConfigError, match="non-public"):
        build_reward_fn([judge_spec(url)], judges=lambda j: JudgeTarget("openai", url, j.model))


def test_without_a_resolver_the_reward_builds_but_cannot_judge(stub) -> None:
    _, url = stub
    with build_reward_fn([judge_spec(url)], http_allow_private=True) as fn:
        (result,) = fn.score_samples(_samples(["x"]))
    assert "scored by a job's worker" in result.errors["judge_score"]


def _samples(completions: list[str]) -> list[Any]:
    from app.schemas.reward import RewardSample

    return [RewardSample(prompt="p", completion=c, row={}) for c in completions]


def test_group_judging_without_groups_fails_when_built(stub) -> None:
    _, url = stub
    spec = judge_spec(url, prompt="{{completions}}", group=True)
    with pytest.raises(RewardConfigError, match="group judging needs groups"):
        reward_fn(spec, url, group_size=None)
