"""The serving decoder: per-request seeds independent of the batch, stop strings, logprobs, stream deltas."""

import threading

import pytest
import torch
from transformers import AutoModelForCausalLM, DynamicCache

from workers.engine.model import load_tokenizer
from workers.engine.tiny import build_tiny_model
from workers.inference.decode import DecodeRequest, _visible, decode_batch, prompt_logprobs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    path = build_tiny_model(tmp_path_factory.mktemp("models"))
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval(), load_tokenizer(str(path))


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_a_seeded_request_gives_the_same_text_alone_or_in_a_batch(tiny) -> None:
    model, tokenizer = tiny
    request = DecodeRequest(prompt_ids=ids(tokenizer, "1+2="), max_tokens=8, seed=5, n=2)
    alone = decode_batch(model, tokenizer, [request])[0]
    others = [
        DecodeRequest(prompt_ids=ids(tokenizer, "99 88 77 6"), max_tokens=3, seed=1, temperature=0.5),
        DecodeRequest(prompt_ids=ids(tokenizer, "3"), max_tokens=12, temperature=0),
    ]
    batched = decode_batch(model, tokenizer, [others[0], request, others[1]])[1]
    assert [r.text for r in batched] == [r.text for r in alone]
    assert [r.ids for r in batched] == [r.ids for r in alone]
    assert alone[0].ids != alone[1].ids or alone[0].finish_reason == "stop"  # n draws, not one copied


def test_max_tokens_and_finish_reasons(tiny) -> None:
    model, tokenizer = tiny
    rows = decode_batch(model, tokenizer, [DecodeRequest(prompt_ids=ids(tokenizer, "5"), max_tokens=3, seed=0, n=4)])[0]
    for row in rows:
        assert len(row.ids) <= 3
        assert row.finish_reason == ("length" if len(row.ids) == 3 else "stop")


def test_stop_strings_cut_the_text_and_end_the_row(tiny) -> None:
    model, tokenizer = tiny
    free = decode_batch(
        model, tokenizer, [DecodeRequest(prompt_ids=ids(tokenizer, "1"), max_tokens=12, temperature=0)]
    )[0][0]
    assert len(free.text) >= 3, free.text
    stop = free.text[1:3]
    cut = decode_batch(
        model, tokenizer, [DecodeRequest(prompt_ids=ids(tokenizer, "1"), max_tokens=12, temperature=0, stop=[stop])]
    )[0][0]
    assert cut.text == free.text[: free.text.find(stop)]
    assert cut.finish_reason == "stop"


def test_streamed_deltas_add_up_to_the_text_and_never_show_a_stop_string(tiny) -> None:
    model, tokenizer = tiny
    deltas: dict[int, str] = {0: "", 1: ""}
    request = DecodeRequest(prompt_ids=ids(tokenizer, "7"), max_tokens=10, seed=3, n=2, stop=["00"])

    def on_delta(r: int, choice: int, text: str, _infos) -> None:
        assert r == 0
        deltas[choice] += text

    rows = decode_batch(model, tokenizer, [request], on_delta)[0]
    assert [deltas[0], deltas[1]] == [rows[0].text, rows[1].text]
    assert all("00" not in text for text in deltas.values())


def test_visible_holds_back_a_possible_stop_prefix() -> None:
    assert _visible("12=", ["=4"], finished=False) == ("12", False)
    assert _visible("12=4x", ["=4"], finished=False) == ("12", True)
    assert _visible("12=", ["=4"], finished=True) == ("12=", False)
    assert _visible("ab\ufffd", [], finished=False) == ("ab", False)


def test_logprobs_are_the_models_own(tiny) -> None:
    model, tokenizer = tiny
    prompt = ids(tokenizer, "4+4=")
    row = decode_batch(model, tokenizer, [DecodeRequest(prompt_ids=prompt, max_tokens=5, seed=2, top_logprobs=3)])[0][0]
    assert len(row.tokens) == len(row.ids) > 0
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + row.ids])).logits[0].float().log_softmax(-1)
    for position, (token_id, info) in enumerate(zip(row.ids, row.tokens, strict=True)):
        expected = logits[len(prompt) - 1 + position, token_id].item()
        assert info.logprob == pytest.approx(expected, abs=1e-4)
        assert len(info.top) == 3 and info.top[0][1] >= info.top[-1][1]
    echoed = prompt_logprobs(model, tokenizer, prompt, 1)
    assert len(echoed) == len(prompt)
    assert echoed[1].logprob == pytest.approx(logits[0, prompt[1]].item(), abs=1e-4)


def test_finished_rows_leave_the_batch_and_the_rest_decode_as_alone(tiny, monkeypatch) -> None:
    model, tokenizer = tiny
    long = DecodeRequest(prompt_ids=ids(tokenizer, "12"), max_tokens=24, seed=4, temperature=0)
    alone = decode_batch(model, tokenizer, [long])[0][0]
    assert alone.finish_reason == "length", "the greedy tiny model should not stop early on this prompt"
    kept: list[int] = []
    original = DynamicCache.batch_select_indices

    def record(self, indices):
        kept.append(indices.numel())
        return original(self, indices)

    monkeypatch.setattr(DynamicCache, "batch_select_indices", record)
    shorts = [DecodeRequest(prompt_ids=ids(tokenizer, "3"), max_tokens=2, seed=s, n=3) for s in range(2)]
    batched = decode_batch(model, tokenizer, [*shorts, long])[2][0]
    assert kept and kept[-1] == 1  # the six short rows left; the long one decoded alone afterwards
    assert batched.ids == alone.ids


def test_a_cancelled_request_stops_generating_and_leaves_the_others_alone(tiny) -> None:
    model, tokenizer = tiny
    cancel = threading.Event()
    gone = DecodeRequest(prompt_ids=ids(tokenizer, "12"), max_tokens=20, temperature=0, cancel=cancel)
    kept = DecodeRequest(prompt_ids=ids(tokenizer, "12"), max_tokens=20, temperature=0)
    seen = {0: 0}

    def on_delta(r: int, _choice: int, _text: str, _infos) -> None:
        if r == 0:
            seen[0] += 1
            if seen[0] == 3:
                cancel.set()  # as the worker does when a stream's client disconnects

    stopped, finished = decode_batch(model, tokenizer, [gone, kept], on_delta)
    assert stopped[0].finish_reason == "cancelled" and len(stopped[0].ids) <= 4
    assert finished[0].finish_reason == "length" and len(finished[0].ids) == 20
