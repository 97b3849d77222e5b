"""Remote verifier against a real local HTTP server: batching, concurrency cap, timeouts, retries, bad
responses and unreachable hosts."""

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.utils.rewards import Verifier, specs
from workers.rewards import RewardError, build_reward_fn
from workers.rewards.components import Outcome
from workers.rewards.errors import RewardConfigError


@pytest.fixture
def verifier() -> Iterator[Verifier]:
    server = Verifier()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def score(url: str, completions: list[str], **fields: object) -> list[Outcome]:
    spec = specs({"type": "http", "url": url, "max_error_rate": 1.0, "backoff_s": 0.01, **fields})
    with build_reward_fn(spec, http_allow_private=True) as reward_fn:
        return reward_fn.outcomes(["p"] * len(completions), completions, [{"id": i} for i in range(len(completions))])[
            "http"
        ]


def test_batches_in_order_and_documented_request(verifier: Verifier) -> None:
    completions = ["x" * i for i in range(10)]
    outcomes = score(verifier.url("/ok"), completions, batch_size=4)
    assert [o.value for o in outcomes] == [i / 10 for i in range(10)]
    assert [len(body["items"]) for _, body in verifier.requests] == [4, 4, 2] or len(verifier.requests) == 3
    body = verifier.requests[0][1]
    assert body["reward"] == "http" and set(body["items"][0]) == {"prompt", "completion", "row"}


def test_concurrency_is_capped(verifier: Verifier) -> None:
    outcomes = score(verifier.url("/paced"), ["a"] * 8, batch_size=1, max_concurrency=2)
    assert all(o.value == 0.1 for o in outcomes)
    assert verifier.max_in_flight == 2


def test_slow_verifier_times_out_after_retries(verifier: Verifier) -> None:
    outcomes = score(verifier.url("/slow"), ["a", "b"], timeout_s=0.3, retries=1)
    assert all(o.value is None for o in outcomes)
    assert outcomes[0].error is not None and "timed out after 0.3 s (after 2 attempts)" in outcomes[0].error
    assert len(verifier.requests) == 2


def test_server_errors_are_retried_with_backoff(verifier: Verifier) -> None:
    outcomes = score(verifier.url("/flaky"), ["abc"], retries=2)
    assert [(o.value, o.error) for o in outcomes] == [(0.3, None)]
    assert len(verifier.requests) == 3


def test_retries_run_out(verifier: Verifier) -> None:
    (outcome,) = score(verifier.url("/flaky"), ["abc"], retries=1)
    assert outcome.value is None and "HTTP 500 (after 2 attempts)" in (outcome.error or "")


def test_429_honours_retry_after(verifier: Verifier) -> None:
    (outcome,) = score(verifier.url("/busy"), ["abcd"], retries=1, backoff_s=30.0, backoff_max_s=30.0)
    assert outcome.value == 0.4  # Retry-After: 0 replaced the 30 s backoff


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/shape", "wrong response shape"),
        ("/short", "response has 1 scores for 2 items"),
        ("/nan", "scores[0] is 'high'"),
        ("/bad", "HTTP 400"),
    ],
)
def test_bad_responses_are_clear_errors_and_not_retried(verifier: Verifier, path: str, message: str) -> None:
    outcomes = score(verifier.url(path), ["a", "b"], retries=3)
    assert all(o.value is None and message in (o.error or "") for o in outcomes)
    assert verifier.url(path) in (outcomes[0].error or "")
    assert len(verifier.requests) == 1


def test_unreachable_verifier() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the request: nothing listens there
    (outcome,) = score(f"http://127.0.0.1:{port}/score", ["a"], retries=1)
    assert outcome.value is None
    assert "cannot reach the verifier: ConnectError" in (outcome.error or "")
    assert "(after 2 attempts)" in (outcome.error or "")


def test_null_scores_and_item_errors(verifier: Verifier) -> None:
    outcomes = score(verifier.url("/mixed"), ["a", "b", "c"])
    assert [(o.value, o.error) for o in outcomes] == [
        (1.0, None),
        (None, None),
        (None, "verifier: cannot parse"),
    ]


def test_error_threshold_fails_the_step(verifier: Verifier) -> None:
    spec = specs({"type": "http", "name": "judge", "url": verifier.url("/bad"), "max_error_rate": 0.5})
    with build_reward_fn(spec, http_allow_private=True) as reward_fn, pytest.raises(RewardError) as info:
        reward_fn(["p"] * 4, ["a"] * 4, [{}] * 4)
    assert info.value.reward == "judge" and (info.value.errors, info.value.total) == (4, 4)
    assert "reward 'judge' failed on 4 of 4 completions" in str(info.value) and "HTTP 400" in str(info.value)


def test_private_addresses_are_refused_by_default(verifier: Verifier) -> None:
    with pytest.raises(RewardConfigError, match="non-public address 127.0.0.1"):
        build_reward_fn(specs({"type": "http", "url": verifier.url("/ok")}))
    with pytest.raises(RewardConfigError, match="non-public address 169.254.169.254"):
        build_reward_fn(specs({"type": "http", "url": "http://169.254.169.254/latest/meta-data"}))
