"""Reward checks travel API -> broker -> reward worker (issue 15): the answers when no worker or no
sandbox is there (503, never a 422 about the caller's code, never a 500), what creation checks with
and without a validation_sample (issue 14 item 10), and hostile text in reward errors and return
values, which never breaks an answer (issue 14 item 2)."""

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.celery import create_celery
from app.core.queue import CeleryRewardRunner
from app.main import create_app
from app.schemas.reward_check import RewardCheckError, RewardCheckReply
from tests.rewards.conftest import requires_root

# Requests refuse NUL (storable bodies), so the hostile text is built by the reward from code points.
RAISES = "def reward(prompt, completion, row):\n    raise ValueError(''.join(map(chr, row['msg'])))\n"
# NaN and infinities cannot travel in a JSON request: the reward makes them from these strings.
RETURNS = (
    "def reward(prompt, completion, row):\n    v = row['value']\n"
    "    return float(v) if v in ('inf', '-inf', 'nan', '1e308') else v\n"
)
READS_ANSWER = "def reward(prompt, completion, row):\n    return float(completion == row['answer'])\n"
HOSTILE = "nul \x00 surrogate \ud800 ansi \x1b[2J\x1b[31m red \x9b c1 end"
# Any code point: NUL, C0/C1 controls, ESC, lone surrogates, non-characters; controls weighted up.
CODE_POINT = st.integers(0, 0x10FFFF) | st.integers(0, 0x9F) | st.integers(0xD800, 0xDFFF)
FUZZ = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def database_url(tmp_path):
    """SQLite only: these tests are about the reward path, not the database (kept cheap on CI)."""
    return f"sqlite:///{tmp_path / 'grpo.db'}"


def _post(client, path, body, auth):
    """JSON with \\u escapes (what any client sends for a lone surrogate; httpx refuses to encode one raw)."""
    return client.post(path, content=json.dumps(body), headers={**auth, "Content-Type": "application/json"})


def _assert_safe(response) -> None:
    assert response.status_code < 500, response.text
    body = response.content.decode("utf-8")  # valid UTF-8: no lone surrogate made it out
    assert "\x00" not in body and "\x1b" not in body and "\x9b" not in body
    json.loads(body)


@pytest.fixture
def unanswered(settings, queue):
    """An API whose broker has no reward worker behind it."""
    runner = CeleryRewardRunner(create_celery(settings), timeout_s=0.5)
    app = create_app(settings, queue=queue, reward_runner=runner)
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


def test_no_reward_worker_is_a_503_with_retry_after(unanswered, auth):
    body = {"reward": {"type": "exact_match"}, "samples": [{"completion": "a", "row": {"answer": "a"}}]}
    response = unanswered.post("/v1/rewards:test", json=body, headers=auth)
    assert response.status_code == 503 and response.json()["code"] == "worker_unavailable"
    assert response.headers["Retry-After"] == "30"
    created = unanswered.post("/v1/rewards", json={"name": "x", "spec": {"type": "exact_match"}}, headers=auth)
    assert created.status_code == 503 and created.json()["code"] == "worker_unavailable"


class _Replies:
    def __init__(self, reply: RewardCheckReply) -> None:
        self.reply = reply

    def run(self, _request):
        return self.reply


def test_a_sandbox_the_worker_cannot_set_up_is_a_503_not_a_422(settings, queue, auth, caplog):
    error = RewardCheckError(code="sandbox_unavailable", message="isolation unavailable: unshare: EPERM")
    app = create_app(settings, queue=queue, reward_runner=_Replies(RewardCheckReply(error=error)))
    with TestClient(app) as client:
        body = {"name": "m", "spec": {"type": "math_equivalence"}}
        created = client.post("/v1/rewards", json=body, headers=auth)
        tested = client.post(
            "/v1/rewards:test", json={"reward": body["spec"], "samples": [{"completion": "1"}]}, headers=auth
        )
    app.state.engine.dispose()
    for response in (created, tested):
        assert response.status_code == 503 and response.json()["code"] == "sandbox_unavailable"
        assert "unshare" in response.json()["detail"] and response.headers["Retry-After"]
    assert "isolation unavailable" in caplog.text  # the operator's log has the reason


@requires_root
def test_creation_without_a_sample_checks_but_never_calls_reward(client, auth):
    plain = client.post(
        "/v1/rewards", json={"name": "a", "spec": {"type": "python", "code": READS_ANSWER}}, headers=auth
    )
    assert plain.status_code == 201, plain.text
    assert plain.json()["validation"] == "checked"  # row['answer'] on an empty row would have failed
    sample = {"completion": "7", "row": {"answer": "7"}}
    body = {"name": "b", "spec": {"type": "python", "code": READS_ANSWER}, "validation_sample": sample}
    dry = client.post("/v1/rewards", json=body, headers=auth)
    assert dry.status_code == 201 and dry.json()["validation"] == "dry_run"
    wrong = {**body, "name": "c", "validation_sample": {"completion": "7", "row": {}}}
    refused = client.post("/v1/rewards", json=wrong, headers=auth)
    assert refused.status_code == 422 and "KeyError" in refused.json()["detail"]
    broken_import = {"type": "python", "code": "import no_such_module\n" + READS_ANSWER}
    loaded = client.post("/v1/rewards", json={"name": "d", "spec": broken_import}, headers=auth)
    assert loaded.status_code == 422 and "no_such_module" in loaded.json()["detail"]  # loaded, so imports ran


@requires_root
def test_a_multi_mixing_python_and_field_reading_graders_is_accepted(client, auth):
    multi = {
        "type": "multi",
        "components": [{"type": "python", "code": READS_ANSWER}, {"type": "exact_match", "field": "answer"}],
    }
    created = client.post("/v1/rewards", json={"name": "mix", "spec": multi}, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json()["validation"] == "checked"


@requires_root
def test_hostile_text_in_reward_errors_is_escaped_not_a_500(client, auth):
    sample = {"completion": "x", "row": {"msg": [ord(c) for c in HOSTILE]}}
    created = _post(
        client,
        "/v1/rewards",
        {"name": "h", "spec": {"type": "python", "code": RAISES}, "validation_sample": sample},
        auth,
    )
    assert created.status_code == 422
    _assert_safe(created)
    assert r"\x00" in created.json()["detail"] and r"\ud800" in created.json()["detail"]
    tested = _post(
        client, "/v1/rewards:test", {"reward": {"type": "python", "code": RAISES}, "samples": [sample]}, auth
    )
    assert tested.status_code == 200
    _assert_safe(tested)
    assert r"\x1b[2J" in tested.json()["results"][0]["errors"]["python"]


@requires_root
@FUZZ
@given(messages=st.lists(st.lists(CODE_POINT, max_size=30), min_size=1, max_size=40))
def test_any_exception_message_in_a_test_answer_is_safe(client, auth, messages):
    samples = [{"completion": "x", "row": {"msg": m}} for m in messages]
    response = _post(
        client, "/v1/rewards:test", {"reward": {"type": "python", "code": RAISES}, "samples": samples}, auth
    )
    assert response.status_code == 200
    _assert_safe(response)
    assert response.json()["error_count"] == len(messages)


NO_NUL = st.characters(exclude_characters="\x00")
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(NO_NUL)
    | st.sampled_from(["inf", "-inf", "nan", "1e308"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(NO_NUL, max_size=5), inner, max_size=3),
    max_leaves=8,
)


@requires_root
@FUZZ
@given(values=st.lists(JSONISH, min_size=1, max_size=40))
def test_any_return_value_in_a_test_answer_is_a_score_or_an_error(client, auth, values):
    samples = [{"completion": "x", "row": {"value": v}} for v in values]
    response = _post(
        client, "/v1/rewards:test", {"reward": {"type": "python", "code": RETURNS}, "samples": samples}, auth
    )
    assert response.status_code == 200, response.text
    _assert_safe(response)
    for result in response.json()["results"]:
        value = result["components"]["python"]
        assert (value is None) or (isinstance(value, float) and abs(value) <= 1e6)


@requires_root
@FUZZ
@given(message=st.lists(CODE_POINT, max_size=200))
def test_any_exception_message_in_a_creation_dry_run_is_safe(client, auth, message):
    body = {
        "name": "fz",
        "spec": {"type": "python", "code": RAISES},
        "validation_sample": {"completion": "x", "row": {"msg": message}},
    }
    response = _post(client, "/v1/rewards", body, auth)
    assert response.status_code == 422
    _assert_safe(response)


def test_a_job_whose_reward_weights_are_all_zero_is_refused_naming_them(client, auth):
    from tests.conftest import tiny_spec

    spec = tiny_spec()
    spec["rewards"] = [{"type": "exact_match", "weight": 0.0}, {"type": "format", "weight": 0}]
    refused = client.post("/v1/jobs", json=spec, headers=auth)
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["rewards[0].weight", "rewards[1].weight"]
    spec["rewards"][1]["weight"] = 0.5
    assert client.post("/v1/jobs", json=spec, headers=auth).status_code == 201
