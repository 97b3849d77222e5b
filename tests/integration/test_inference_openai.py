"""The official `openai` SDK against a live API + inference worker (+ a training worker for checkpoints):
models, chat and completions, streaming, logprobs, errors, tenancy, a full and a LoRA checkpoint; and a
job that trains with a judge reward served by the same inference worker (one stack for all: it is the
expensive part)."""

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from scripts.stack import admin
from tests.integration.conftest import shared_stack
from tests.integration.helpers import all_metrics, tiny_job, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHAT = [{"role": "user", "content": "copy 3:"}]
JUDGE = {  # the tiny model judges: the point is the wiring, not the judgement
    "type": "judge_label",
    "name": "judge",
    "judge": {"model": "tiny-demo", "max_tokens": 1},
    "prompt": "{{prompt}}{{completion}}",
    "labels": list("0123456789"),
    "passing": ["1", "3", "5", "7", "9"],
    "max_error_rate": 1.0,  # a random judge may answer something that is not a label
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with shared_stack(tmp_path_factory.mktemp("inference"), worker=True) as (stack, key):
        http = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        # A length reward varies within every group (exact match on an untrained model is mostly 0 for all
        # members: zero advantages, unchanged weights), so three steps surely move the weights.
        job = tiny_job(
            max_steps=3, rewards=[{"type": "length", "max_length": 4, "buffer": 3}], grpo={"learning_rate": 1e-2}
        )
        full = http.post("/v1/jobs", json=job).raise_for_status().json()["id"]
        lora = {**job, "model": {"source": "tiny-demo", "lora": {"r": 4, "alpha": 8}}}
        lora_id = http.post("/v1/jobs", json=lora).raise_for_status().json()["id"]
        judged = http.post("/v1/jobs", json=tiny_job(max_steps=2, rewards=[JUDGE])).raise_for_status().json()["id"]
        other_key = admin(stack.env, "create-key", "--tenant", "someone-else")
        yield {
            "stack": stack,
            "client": openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0),
            "other": openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=other_key, max_retries=0),
            "http": http,
            "full": full,
            "lora": lora_id,
            "judged": judged,
        }
        http.close()


def test_chat_completion_is_reproducible_with_a_seed(live: dict) -> None:
    client = live["client"]
    first = client.chat.completions.create(model="tiny-demo", messages=CHAT, max_tokens=6, seed=7)
    again = client.chat.completions.create(model="tiny-demo", messages=CHAT, max_tokens=6, seed=7)
    assert first.object == "chat.completion" and first.model == "tiny-demo"
    assert first.choices[0].message.role == "assistant"
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.choices[0].finish_reason in ("stop", "length")
    assert first.usage.prompt_tokens == len("copy 3:") - 4  # letters are outside the tiny alphabet: one unk each
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens


def test_streaming_gives_the_same_text_as_one_answer(live: dict) -> None:
    client = live["client"]
    whole = client.chat.completions.create(model="tiny-demo", messages=CHAT, max_tokens=8, seed=11, n=2)
    stream = client.chat.completions.create(
        model="tiny-demo",
        messages=CHAT,
        max_tokens=8,
        seed=11,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts, finish, usage = ["", ""], [None, None], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            finish[choice.index] = choice.finish_reason or finish[choice.index]
    assert texts == [c.message.content for c in whole.choices]
    assert finish == [c.finish_reason for c in whole.choices]
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens


def test_chat_logprobs(live: dict) -> None:
    answer = live["client"].chat.completions.create(
        model="tiny-demo", messages=CHAT, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3
    )
    content = answer.choices[0].logprobs.content
    assert content, "no token log-probs"
    for token in content:
        assert token.logprob <= 0 and len(token.top_logprobs) == 3
        # greedy: the chosen token is the most likely one
        assert token.logprob == pytest.approx(max(t.logprob for t in token.top_logprobs))


def test_completion_echo_logprobs_and_several_prompts(live: dict) -> None:
    answer = live["client"].completions.create(
        model="tiny-demo", prompt=["1+2=", "7"], max_tokens=3, echo=True, logprobs=2, n=2, seed=1
    )
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert answer.choices[0].text.startswith("1+2=") and answer.choices[2].text.startswith("7")
    logprobs = answer.choices[0].logprobs
    assert logprobs.tokens[:4] == ["1", "+", "2", "="]
    assert logprobs.token_logprobs[0] is None and all(v <= 0 for v in logprobs.token_logprobs[1:])
    assert logprobs.text_offset[:4] == [0, 1, 2, 3]


def test_completion_stream_ends_with_done(live: dict) -> None:
    response = live["http"].post(
        "/v1/completions", json={"model": "tiny-demo", "prompt": "12", "max_tokens": 4, "stream": True, "stop": ["9"]}
    )
    lines = [line for line in response.text.splitlines() if line]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    text = "".join(choice["text"] for chunk in chunks for choice in chunk["choices"])
    assert "9" not in text
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_errors_are_openai_errors(live: dict) -> None:
    client = live["client"]
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=CHAT)
    assert missing.value.body["code"] == "model_not_found" and missing.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="tiny-demo", messages=CHAT, temperature=3)
    assert bad.value.body["param"] == "temperature" and bad.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as too_long:
        client.completions.create(model="tiny-demo", prompt="1", max_tokens=4000)
    assert too_long.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=client.base_url, api_key="grpo_wrong", max_retries=0).models.list()


def test_trained_checkpoints_answer_and_stay_private(live: dict) -> None:
    http, client = live["http"], live["client"]
    for job in (live["full"], live["lora"]):
        wait_for(http, job, until={"succeeded"})
    ids = {m.id for m in client.models.list()}
    assert {"tiny-demo", f"{live['full']}:latest", f"{live['full']}:ckpt-3", f"{live['lora']}:latest"} <= ids

    def greedy_logprobs(model: str) -> list[float]:
        answer = client.completions.create(model=model, prompt="copy 3:", max_tokens=4, temperature=0, logprobs=0)
        return answer.choices[0].logprobs.token_logprobs

    base = greedy_logprobs("tiny-demo")
    for job in (live["full"], live["lora"]):
        latest = greedy_logprobs(f"{job}:latest")
        assert latest == greedy_logprobs(f"{job}:ckpt-3")
        assert latest != base, "the checkpoint answered like the untrained base model"
        chat = client.chat.completions.create(model=f"{job}:latest", messages=CHAT, max_tokens=4, stream=True)
        assert any(chunk.choices and chunk.choices[0].finish_reason for chunk in chat)
    # the base answers as before although LoRA adapters now sit on its modules
    assert greedy_logprobs("tiny-demo") == pytest.approx(base)
    with pytest.raises(openai.NotFoundError):
        live["other"].chat.completions.create(model=f"{live['full']}:latest", messages=CHAT)
    assert f"{live['full']}:latest" not in {m.id for m in live["other"].models.list()}
    usage = http.get("/v1/inference/usage").raise_for_status().json()
    assert sum(row["completion_tokens"] for row in usage["data"]) > 0


def test_one_base_copy_serves_its_lora_checkpoints(live: dict) -> None:
    """After the test above: the tiny base (served by name and under the LoRA checkpoint) is in memory
    once, beside the full checkpoint and the adapter."""
    stats = httpx.get(f"{live['stack'].env['GRPO_INFERENCE_URL']}/stats").json()
    loaded = stats["cache"]["models"]
    adapters = [key for key in loaded if key.startswith("ckpt:")]
    full_models = [key for key in loaded if not key.startswith("ckpt:")]
    assert len(adapters) == 1 and len(full_models) == 2, loaded
    assert stats["batches"] >= 1 and stats["cache"]["evictions"] == 0


def test_a_job_trains_with_a_judge_reward(live: dict) -> None:
    http = live["http"]
    done = wait_for(http, live["judged"], until={"succeeded"})
    assert done["progress"]["step"] == 2
    metrics = all_metrics(http, live["judged"])
    for step in (1, 2):  # every distinct question of a step was a judge call or a cache hit
        values = metrics[step]
        assert values["scorer/reward/judge/judge_calls"] + values["scorer/reward/judge/judge_cache_hits"] >= 1
        assert values["scorer/reward/judge/judge_prompt_tokens"] >= values["scorer/reward/judge/judge_calls"]
    assert metrics[1]["scorer/reward/judge/judge_calls"] >= 1
