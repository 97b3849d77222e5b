"""Log-probs and rollouts against naive reference computations on the tiny model."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from workers.engine import build_tiny_model, logprobs
from workers.engine.logprobs import completion_logprobs, selective_log_softmax
from workers.engine.rollout import generate, left_pad
from workers.engine.sampling import SamplingParams


@pytest.fixture(scope="module")
def tiny(model_cache):
    path = build_tiny_model(model_cache)
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_selective_log_softmax_matches_full_log_softmax(monkeypatch):
    monkeypatch.setattr(logprobs, "CHUNK_TOKENS", 7)  # several chunks, the last one partial
    hidden, head = torch.randn(30, 16), torch.nn.Linear(16, 50)
    targets = torch.randint(0, 50, (30,))
    logp, entropy = selective_log_softmax(hidden, head, targets, temperature=0.7, with_entropy=True)
    full = torch.log_softmax(head(hidden) / 0.7, dim=-1)
    torch.testing.assert_close(logp, full.gather(1, targets[:, None]).squeeze(1))
    torch.testing.assert_close(entropy, -(full.exp() * full).sum(-1))


def test_completion_logprobs_match_a_full_forward(tiny):
    model, tokenizer = tiny
    prompts = [
        tokenizer("7>")["input_ids"],
        tokenizer("12+3=")["input_ids"],
    ]  # different lengths: left padding
    prompt_ids, prompt_mask = left_pad(prompts, tokenizer.pad_token_id)
    completion_ids = torch.tensor([[5, 6, 1, 0], [7, 8, 9, 10]])
    completion_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    logps, entropy = completion_logprobs(
        model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature=1.3, with_entropy=True
    )
    for row, prompt in enumerate(prompts):
        n = int(completion_mask[row].sum())
        ids = torch.tensor([prompt + completion_ids[row, :n].tolist()])
        with torch.no_grad():
            full = torch.log_softmax(model(ids).logits[0].float() / 1.3, dim=-1)  # no padding at all
        expected = full[len(prompt) - 1 : -1].gather(1, completion_ids[row, :n, None]).squeeze(1)
        torch.testing.assert_close(logps[row, :n].detach(), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            entropy[row, :n], -(full.exp() * full).sum(-1)[len(prompt) - 1 : -1], atol=1e-5, rtol=1e-5
        )
    assert logps[0, 3] == 0 and entropy[0, 3] == 0  # padding is not scored


def naive_greedy(model, prompt, max_new, eos):
    ids = list(prompt)
    for _ in range(max_new):
        with torch.no_grad():
            token = int(model(torch.tensor([ids])).logits[0, -1].argmax())
        ids.append(token)
        if token == eos:
            break
    return ids[len(prompt) :]


def test_greedy_rollout_with_shared_cache_matches_naive_decoding(tiny):
    model, tokenizer = tiny
    prompts = [tokenizer(p)["input_ids"] for p in ("7>", "12+3=", "9")]
    rollout = generate(
        model,
        tokenizer,
        prompts,
        group_size=2,
        max_new_tokens=12,
        params=SamplingParams(greedy=True),
        generator=torch.Generator(),
    )
    for row in range(6):
        expected = naive_greedy(model, prompts[row // 2], 12, tokenizer.eos_token_id)
        n = int(rollout.completion_mask[row].sum())
        assert rollout.completion_ids[row, :n].tolist() == expected


def test_sampled_rollout_masks_after_eos_and_flags_truncation(tiny):
    model, tokenizer = tiny
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    prompts = [tokenizer(p)["input_ids"] for p in ("1>", "22>", "333>", "4")]
    rollout = generate(
        model,
        tokenizer,
        prompts,
        group_size=8,
        max_new_tokens=20,
        params=SamplingParams(),
        generator=torch.Generator().manual_seed(0),
    )
    lengths = rollout.completion_mask.sum(1)
    assert rollout.truncated.any() and (~rollout.truncated).any()  # both cases occur with this seed
    for row in range(32):
        n = int(lengths[row])
        tokens = rollout.completion_ids[row].tolist()
        assert rollout.completion_mask[row, :n].all() and not rollout.completion_mask[row, n:].any()
        assert all(t == pad for t in tokens[n:])
        assert eos not in tokens[: n - 1]  # nothing kept after the first EOS
        assert (tokens[n - 1] == eos) != bool(rollout.truncated[row])
        if rollout.truncated[row]:
            assert n == 20
    assert rollout.prompt_ids.shape[0] == 32 and rollout.prompt_mask[::8].sum(1).tolist() == [2, 3, 4, 1]


def test_stop_strings_end_a_completion(tiny):
    model, tokenizer = tiny
    rollout = generate(
        model,
        tokenizer,
        [tokenizer("5>")["input_ids"]],
        group_size=16,
        max_new_tokens=30,
        params=SamplingParams(),
        generator=torch.Generator().manual_seed(1),
        stop=["3"],
    )
    stopped = [
        text
        for text, cut in zip(rollout.texts, rollout.truncated.tolist(), strict=True)
        if not cut and text.endswith("3")
    ]
    assert stopped, "with this seed some completions produce the stop string"
    for text in rollout.texts:
        assert "3" not in text[:-1]  # nothing is generated past the first stop string
