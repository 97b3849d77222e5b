"""Log-probs and rollouts against naive reference computations on the tiny model."""

import copy
import itertools

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.cache_utils import DynamicLayer

from workers.engine import build_tiny_model, kernels, logprobs, rollout
from workers.engine.backend import Backend, model_step, select_backend
from workers.engine.kernels import Kernels, pack_head, packed_linear
from workers.engine.kernels.kv_cache import PreallocatedLayer, rollout_cache
from workers.engine.kernels.lean_decode import lean_decode_step
from workers.engine.kernels.lm_head import chunked_selected_logprobs
from workers.engine.logprobs import completion_logprobs, length_buckets
from workers.engine.rollout import generate, left_pad, trim_at_stop
from workers.engine.sampling import SamplingParams


@pytest.fixture(scope="module")
def tiny(model_cache):
    path = build_tiny_model(model_cache)
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("backend", [Backend(), Kernels()], ids=lambda b: b.name)
def test_head_logprobs_match_full_log_softmax(backend):
    hidden, head = torch.randn(30, 16), torch.nn.Linear(16, 50)
    targets = torch.randint(0, 50, (30,))
    head_logprobs = backend.head_logprobs(head, 7)  # several chunks, the last one partial
    logp, entropy = head_logprobs(hidden, targets, 0.7, True)
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


def _full_forward_reference(model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature):
    """One forward of every row's prompt + completion and autograd through a full log-softmax."""
    hidden = logprobs._full_forward_hidden(
        model.get_decoder(), prompt_ids, prompt_mask, completion_ids, completion_mask
    )
    full = torch.log_softmax(model.lm_head(hidden).float() / temperature, dim=-1)
    return full.gather(2, completion_ids[:, :, None]).squeeze(2) * completion_mask


def _values_and_gradients(model, fn):
    model.zero_grad()
    logps = fn()
    weights = torch.linspace(-1.0, 1.0, logps.numel()).view_as(logps)  # every token gets its own weight
    (logps * weights).sum().backward()
    return logps.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def _grouped_batch(tokenizer, group):
    prompts = [tokenizer(p)["input_ids"] for p in ("7>", "12+3=", "9")]
    prompt_ids, prompt_mask = left_pad(prompts, tokenizer.pad_token_id)
    prompt_ids, prompt_mask = prompt_ids.repeat_interleave(group, 0), prompt_mask.repeat_interleave(group, 0)
    rows = len(prompts) * group
    generator = torch.Generator().manual_seed(3)
    lengths = torch.randint(1, 9, (rows,), generator=generator)
    completion_ids = torch.randint(3, len(tokenizer), (rows, 8), generator=generator)
    completion_mask = (torch.arange(8)[None, :] < lengths[:, None]).long()
    shuffle = torch.randperm(rows, generator=generator)  # groups need not be contiguous
    return (
        prompt_ids[shuffle],
        prompt_mask[shuffle],
        completion_ids[shuffle] * completion_mask[shuffle],
        completion_mask[shuffle],
    )


@pytest.mark.parametrize("overhead", [0, 4, 10_000])  # one bucket per length ... a single bucket
def test_shared_prompts_and_length_buckets_match_the_full_forward(tiny, monkeypatch, overhead):
    model, tokenizer = tiny
    model.train()
    monkeypatch.setattr(logprobs, "BUCKET_COSTS", {"cpu": logprobs.BucketCosts(overhead, max_tokens=20)})
    monkeypatch.setattr(logprobs, "CHUNK_TOKENS", 5)  # several head chunks
    batch = _grouped_batch(tokenizer, group=4)
    ours, ours_grads = _values_and_gradients(model, lambda: completion_logprobs(model, *batch, temperature=0.8)[0])
    ref, ref_grads = _values_and_gradients(model, lambda: _full_forward_reference(model, *batch, 0.8))
    model.eval()
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert (ours[batch[3] == 0] == 0).all()
    for name, grad in ref_grads.items():
        torch.testing.assert_close(ours_grads[name], grad, atol=1e-6, rtol=1e-4, msg=name)


def test_gradient_checkpointing_takes_the_full_forward_path(tiny):
    model, tokenizer = tiny
    batch = _grouped_batch(tokenizer, group=2)
    expected = completion_logprobs(model, *batch, temperature=1.0)[0]
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    try:
        assert not logprobs._shares_prompts(model.get_decoder())
        torch.testing.assert_close(completion_logprobs(model, *batch, temperature=1.0)[0], expected)
    finally:
        model.gradient_checkpointing_disable()
    assert logprobs._shares_prompts(model.get_decoder())


@pytest.mark.parametrize("packed", [True, False])  # logits from the oneDNN-packed weight, or torch.mm
@pytest.mark.parametrize("chunk", [6, 64])  # several chunks (recomputed in backward), one chunk (kept)
@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_chunked_head_gradients_match_autograd(chunk, temperature, packed):
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(23, 16, generator=generator, requires_grad=True)
    head = torch.nn.Linear(16, 50)
    targets = torch.randint(0, 50, (23,), generator=generator)
    upstream = torch.randn(23, generator=generator)
    packed_head = pack_head(head, 512) if packed else None
    assert (packed_head is not None) == packed
    logp, entropy = chunked_selected_logprobs(
        hidden, head.weight, head.bias, targets, temperature, True, chunk, packed_head
    )
    grads = torch.autograd.grad((logp * upstream).sum(), (hidden, head.weight, head.bias))
    full = torch.log_softmax(head(hidden) / temperature, dim=-1)
    torch.testing.assert_close(entropy, -(full.exp() * full).sum(-1).detach())
    full = full.gather(1, targets[:, None]).squeeze(1)
    expected = torch.autograd.grad((full * upstream).sum(), (hidden, head.weight, head.bias))
    torch.testing.assert_close(logp, full)
    for ours, theirs in zip(grads, expected, strict=True):
        torch.testing.assert_close(ours, theirs)


def test_length_buckets_are_an_optimal_partition():
    lengths = [5, 1, 9, 9, 2, 7, 3, 3]
    order = sorted(range(len(lengths)), key=lambda r: -lengths[r])

    def splits():  # every split of the length-sorted order into runs
        for k in range(len(order)):
            for cuts in itertools.combinations(range(1, len(order)), k):
                yield [order[s:e] for s, e in zip((0, *cuts), (*cuts, len(order)), strict=True)]

    def padded(bucket):
        return len(bucket) * max(lengths[r] for r in bucket)

    for overhead, max_tokens in [(0, None), (3, None), (8, None), (100, None), (100, 20), (3, 9)]:
        buckets = length_buckets(lengths, overhead, max_tokens)
        assert sorted(r for b in buckets for r in b) == list(range(len(lengths)))
        allowed = [s for s in splits() if max_tokens is None or all(padded(b) <= max_tokens or len(b) == 1 for b in s)]
        assert buckets in allowed
        cost = sum(overhead + padded(b) for b in buckets)
        assert cost == min(sum(overhead + padded(b) for b in split) for split in allowed)
    assert len(length_buckets(lengths, 0)) == len(set(lengths))
    assert len(length_buckets(lengths, 100)) == 1
    assert all(padded(b) <= 9 or len(b) == 1 for b in length_buckets(lengths, 0, max_tokens=9))


@pytest.mark.parametrize("path", ["kernels", "kernels-without-lean-step", "transformers"])
def test_rollout_is_the_same_however_finished_rows_leave_the_batch(tiny, monkeypatch, path):
    model, tokenizer = tiny
    backend = select_backend(fast_paths=path != "transformers")
    if path == "kernels-without-lean-step":  # the preallocated cache with transformers' forward
        monkeypatch.setattr(kernels, "lean_decode_step", lambda *_: None)
    prompts = [tokenizer(p)["input_ids"] for p in ("1>", "22>", "333>", "4")]
    results = []
    for compact_every in (1, 8, 10**9):  # drop each finished row at once, in groups, never
        monkeypatch.setattr(rollout, "COMPACT_EVERY", compact_every)
        results.append(
            generate(
                model,
                tokenizer,
                prompts,
                group_size=8,
                max_new_tokens=20,
                params=SamplingParams(),
                generator=torch.Generator().manual_seed(0),
                backend=backend,
            )  # fmt: skip
        )
    for other in results[1:]:
        assert torch.equal(other.completion_ids, results[0].completion_ids)
        assert torch.equal(other.truncated, results[0].truncated)


@pytest.mark.parametrize("packed", [True, False])
def test_lean_decode_step_matches_the_transformers_forward(tiny, monkeypatch, packed):
    model, tokenizer = tiny
    if not packed:  # plain F.linear where oneDNN is missing
        monkeypatch.setattr(packed_linear, "onednn_packing_available", lambda _: False)
    prompts = [tokenizer(p)["input_ids"] for p in ("7>", "12+3=", "9")]
    prompt_ids, prompt_mask = left_pad(prompts, tokenizer.pad_token_id)
    rows, width = prompt_ids.shape
    positions = (prompt_mask.cumsum(1) - 1).clamp(min=0)
    caches = {"lean": rollout_cache(model, width + 6), "hf": DynamicCache()}
    with torch.no_grad():
        for cache in caches.values():
            model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions, cache=cache, use_cache=True)
        step = lean_decode_step(model, caches["lean"], rows)
        assert step is not None
        attention = prompt_mask
        tokens = torch.tensor([4, 5, 6])
        for t in range(5):
            attention = torch.cat([attention, torch.ones(rows, 1, dtype=torch.long)], dim=1)
            pos = prompt_mask.sum(1) + t
            ours = step(tokens, pos, attention, caches["lean"])
            theirs = model(
                input_ids=tokens[:, None], attention_mask=attention, position_ids=pos[:, None],
                cache=caches["hf"], use_cache=True,
            ).logits[:, -1]  # fmt: skip
            torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
            tokens = theirs.argmax(-1)
        for lean_layer, hf_layer in zip(caches["lean"].layers, caches["hf"].layers, strict=True):
            torch.testing.assert_close(lean_layer.keys, hf_layer.keys)
            torch.testing.assert_close(lean_layer.values, hf_layer.values)


def test_lean_decode_step_is_not_used_where_it_would_not_be_exact(tiny):
    model, _ = tiny
    cache = rollout_cache(model, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert lean_decode_step(model, cache, 4) is None  # bf16 autocast: transformers' own dtype flow
    assert lean_decode_step(model, DynamicCache(), 4) is None  # not a preallocated cache
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(model.config._name_or_path), LoraConfig(r=2))
    assert lean_decode_step(lora, rollout_cache(lora, 8), 4) is None  # adapters live in the projections


def test_preallocated_cache_holds_what_a_dynamic_cache_holds():
    generator = torch.Generator().manual_seed(0)
    ours, theirs = PreallocatedLayer(capacity=10), DynamicLayer()
    prefill = [torch.randn(2, 2, 3, 4, generator=generator) for _ in range(2)]
    for layer in (ours, theirs):
        layer.update(*prefill)
        layer.batch_repeat_interleave(3)  # 2 rows -> 6
    for step in range(4):
        new = [torch.randn(ours.keys.size(0), 2, 1, 4, generator=generator) for _ in range(2)]
        for layer in (ours, theirs):
            layer.update(*new)
        if step == 1:
            keep = torch.tensor([0, 2, 5])
            ours.batch_select_indices(keep)
            theirs.batch_select_indices(keep)
        assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)
        assert ours.get_seq_length() == theirs.get_seq_length()
    with pytest.raises(RuntimeError, match="capacity"):
        ours.update(torch.zeros(3, 2, 4, 4), torch.zeros(3, 2, 4, 4))


@pytest.mark.parametrize("chunk", [6, 64])
def test_chunked_head_under_bf16_autocast_computes_like_autograd(chunk):
    generator = torch.Generator().manual_seed(1)
    hidden = torch.randn(23, 16, generator=generator, requires_grad=True)
    head = torch.nn.Linear(16, 50, bias=False)
    targets = torch.randint(0, 50, (23,), generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logp, _ = chunked_selected_logprobs(hidden, head.weight, None, targets, 1.0, False, chunk)
        full = torch.log_softmax(head(hidden).float(), dim=-1).gather(1, targets[:, None]).squeeze(1)
    ours = torch.autograd.grad(logp.sum(), (hidden, head.weight))
    theirs = torch.autograd.grad(full.sum(), (hidden, head.weight))
    torch.testing.assert_close(logp, full)  # the same bf16 logits, upcast
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)  # bf16 products


def test_a_stop_token_with_trailing_characters_ends_the_text_at_the_stop_string(tiny, monkeypatch):
    """Issue 17 defect 5: a token that completes a stop string and carries characters after it (here an
    added token '+9' with stop '+') is kept whole in the tokens and the loss mask, and the text the reward
    sees ends right after the stop string."""
    model, tokenizer = tiny
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.add_tokens(["+9"])
    merged = tokenizer.convert_tokens_to_ids("+9")

    def always_merged(logits, _params, _generator, _history=None):
        return torch.full((logits.size(0),), merged, dtype=torch.long), torch.zeros(logits.size(0))

    monkeypatch.setattr(rollout, "next_tokens", always_merged)
    out = generate(
        model, tokenizer, [tokenizer("5>")["input_ids"]], group_size=2, max_new_tokens=5,
        params=SamplingParams(), generator=torch.Generator().manual_seed(0), stop=["+"],
    )  # fmt: skip
    assert out.texts == ["+", "+"]
    assert out.completion_ids[:, 0].tolist() == [merged, merged]
    assert out.completion_mask.tolist() == [[1], [1]] and not out.truncated.any()
    assert trim_at_stop("ab.cd;e", [";", "."]) == "ab." and trim_at_stop("abc", ["x"]) == "abc"


def test_scorer_and_cached_decode_step_under_bf16_autocast_match_a_plain_forward(tiny):
    """bf16 autocast (precision 'bf16'): the scorer (shared prompts, buckets, selective head) and the
    preallocated-cache decode step (backend.model_step, the path LoRA and bf16 rollouts take) against a plain
    transformers forward of the whole sequence under the same autocast. Measured when written (CPU, one
    thread): scorer within 2.4e-7 of the plain bf16 forward's log-probs (3e-3 from fp32: bf16 itself),
    decode-step logits bit-equal. Bounds: 1e-5 on log-probs, 1e-3 on bf16 logits (below one bf16 ulp at 1)."""
    model, tokenizer = tiny
    prompts = [tokenizer(p)["input_ids"] for p in ("7>", "12+3=", "9")]
    prompt_ids, prompt_mask = left_pad(prompts, tokenizer.pad_token_id)
    generator = torch.Generator().manual_seed(3)
    completion_ids = torch.randint(3, len(tokenizer), (3, 6), generator=generator)
    completion_mask = torch.ones(3, 6, dtype=torch.long)
    completion_mask[0, 4:] = 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ours, _ = completion_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature=0.8)
        for row, prompt in enumerate(prompts):
            n = int(completion_mask[row].sum())
            ids = torch.tensor([prompt + completion_ids[row, :n].tolist()])
            full = torch.log_softmax(model(ids).logits[0].float() / 0.8, dim=-1)[len(prompt) - 1 : -1]
            expected = full.gather(1, completion_ids[row, :n, None]).squeeze(1)
            torch.testing.assert_close(ours[row, :n], expected, rtol=0, atol=1e-5)

        rows, width = prompt_ids.shape
        cache = rollout_cache(model, width + 6)
        positions = (prompt_mask.cumsum(1) - 1).clamp(min=0)
        model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions, cache=cache, use_cache=True)
        attention, sequence, tokens = prompt_mask, prompt_ids, torch.tensor([4, 5, 6])
        for t in range(5):
            attention = torch.cat([attention, torch.ones(rows, 1, dtype=torch.long)], dim=1)
            step_logits = model_step(model, tokens, prompt_mask.sum(1) + t, attention, cache)
            sequence = torch.cat([sequence, tokens[:, None]], dim=1)
            plain = model(
                input_ids=sequence, attention_mask=attention, position_ids=(attention.cumsum(1) - 1).clamp(min=0)
            ).logits[:, -1]
            assert step_logits.dtype == torch.bfloat16
            torch.testing.assert_close(step_logits.float(), plain.float(), rtol=0, atol=1e-3)
            tokens = plain.argmax(-1)


@pytest.mark.parametrize("params", [SamplingParams(), SamplingParams(greedy=True)], ids=["sampled", "greedy"])
def test_fast_paths_on_and_off_give_the_same_rollout_and_logprobs(tiny, params):
    """The config switch (GRPOConfig.fast_paths): the kernels and plain transformers draw the same tokens
    from the same seed and score them alike (the kernels' matmuls sum in another order: ~1e-6)."""
    model, tokenizer = tiny
    prompts = [tokenizer(p)["input_ids"] for p in ("1>", "22>", "333>")]
    outs = {}
    for fast in (True, False):
        backend = select_backend(fast_paths=fast)
        out = generate(
            model, tokenizer, prompts, group_size=4, max_new_tokens=12, params=params,
            generator=torch.Generator().manual_seed(0), backend=backend,
        )  # fmt: skip
        logps, _ = completion_logprobs(
            model, out.prompt_ids, out.prompt_mask, out.completion_ids, out.completion_mask, temperature=1.0,
            backend=backend,
        )  # fmt: skip
        outs[fast] = out, logps.detach()
    (fast_out, fast_logps), (plain_out, plain_logps) = outs[True], outs[False]
    assert type(select_backend(fast_paths=True)) is Kernels and type(select_backend(fast_paths=False)) is Backend
    assert torch.equal(fast_out.completion_ids, plain_out.completion_ids)
    assert torch.equal(fast_out.completion_mask, plain_out.completion_mask)
    torch.testing.assert_close(fast_logps, plain_logps, atol=1e-5, rtol=1e-5)
    if fast_out.sampler_logps is not None:
        torch.testing.assert_close(fast_out.sampler_logps, plain_out.sampler_logps, atol=1e-5, rtol=1e-5)
