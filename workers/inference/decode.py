"""Batched decoding for serving: many requests, each with its own sampling knobs, in one KV-cached loop.

The training rollout (workers/engine/rollout.py) samples every row with one SamplingParams and one
generator. A served batch mixes requests (different temperature, top_p, seed, stop strings, max_tokens,
logprobs), so this loop keeps the rollout's pieces (left padding, the preallocated KV cache, the lean
decode step, the exact inverse-CDF sampler and transformers' logit processors) and applies them per
request: a request's n rows are sampled together from that request's own seeded generator, so the same
seed gives the same completion whatever else shares the batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from workers.engine.backend import cache_keyword, select_backend
from workers.engine.rollout import COMPACT_EVERY, eos_token_ids, left_pad
from workers.engine.sampling import SamplingParams, inverse_cdf_sample, process_logits


@dataclass
class DecodeRequest:
    """One request's prompt (token ids) and knobs; it becomes `n` rows of the batch."""

    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    top_logprobs: int | None = None  # None: no logprobs; 0: the chosen token's only; k: and the k most likely
    cancel: threading.Event | None = None  # set when nobody waits any more (a stream's client went away)


@dataclass
class TokenInfo:
    token: str
    logprob: float
    top: list[tuple[str, float]]


@dataclass
class RowState:
    """What one completion has produced so far; `emitted` text has been handed to the caller."""

    ids: list[int] = field(default_factory=list)
    tokens: list[TokenInfo] = field(default_factory=list)
    text: str = ""
    emitted: int = 0
    finish_reason: str | None = None


# on_delta(request index, choice index, new text, new token infos) whenever a row has news.
DeltaFn = Callable[[int, int, str, list[TokenInfo]], None]


def _visible(text: str, stop: list[str], finished: bool) -> tuple[str, bool]:
    """The part of `text` that may be shown, and whether a stop string ended it. Unfinished text holds
    back what could still become a stop string, and a trailing partial UTF-8 character."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    if cut >= 0:
        return text[:cut], True
    if finished:
        return text, False
    hold = max((len(s) - 1 for s in stop), default=0)
    shown = text[: len(text) - hold] if hold else text
    return shown.rstrip("\ufffd"), False


def _token_infos(
    tokenizer: PreTrainedTokenizerBase, logprobs: torch.Tensor, chosen: torch.Tensor, top: int
) -> list[TokenInfo]:
    """(R, V) log-probs of the model's distribution, (R,) chosen ids -> one TokenInfo per row."""
    picked = logprobs.gather(1, chosen[:, None]).squeeze(1).tolist()
    top = min(top, logprobs.size(-1))  # a tiny vocabulary may have fewer tokens than asked for
    top_values, top_ids = logprobs.topk(top, dim=-1) if top > 0 else (None, None)
    infos = []
    for row, token_id in enumerate(chosen.tolist()):
        alternatives = []
        if top_ids is not None and top_values is not None:
            alternatives = [
                (tokenizer.decode([i]), v) for i, v in zip(top_ids[row].tolist(), top_values[row].tolist(), strict=True)
            ]
        infos.append(TokenInfo(tokenizer.decode([token_id]), picked[row], alternatives))
    return infos


def prompt_logprobs(model: nn.Module, tokenizer: PreTrainedTokenizerBase, ids: list[int], top: int) -> list[TokenInfo]:
    """Log-probs of each prompt token given the ones before it (the first has none: logprob 0, as a
    placeholder the API turns into null). For `echo` with `logprobs` on completions."""
    device = next(model.parameters()).device
    tensor = torch.tensor([ids], device=device)
    logits = model(input_ids=tensor).logits[0, :-1].float()  # (L-1, V)
    infos = _token_infos(tokenizer, logits.log_softmax(-1), tensor[0, 1:], top) if len(ids) > 1 else []
    return [TokenInfo(tokenizer.decode([ids[0]]), 0.0, []), *infos]


@torch.no_grad()
def decode_batch(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    requests: list[DecodeRequest],
    on_delta: DeltaFn | None = None,
) -> list[list[RowState]]:
    """Generate every request's n completions together; returns [request][choice] row states."""
    device = next(model.parameters()).device
    owners = [(r, c) for r, request in enumerate(requests) for c in range(request.n)]  # row -> (request, choice)
    prompt_ids, prompt_mask = left_pad([requests[r].prompt_ids for r, _ in owners], tokenizer.pad_token_id)
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)  # (N, Lp)
    rows, width = prompt_ids.shape
    steps = max(request.max_tokens for request in requests)
    eos = set(eos_token_ids(model, tokenizer))
    generators = [_generator(request.seed, device) for request in requests]
    params = [
        SamplingParams(temperature=max(q.temperature, 1e-5), top_p=q.top_p, greedy=q.temperature == 0) for q in requests
    ]
    states = [RowState() for _ in owners]

    # 1) prefill every row (rows of one request repeat the prompt; simpler than sharing, and n is small)
    backend = select_backend()  # the engine's kernels where exact (preallocated cache, lean decode step)
    cache = backend.rollout_cache(model, width + steps)
    positions = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        position_ids=positions,
        **{cache_keyword(model): cache},
        use_cache=True,
        logits_to_keep=1,
    ).logits[:, -1]  # (N, V)
    attention = torch.cat([prompt_mask, prompt_mask.new_ones(rows, steps)], dim=1)
    lengths = prompt_mask.sum(dim=1)
    step = backend.decode_step(model, cache, rows)

    # 2) decode. `live` maps batch positions to rows; finished rows leave the batch once they are at least
    #    1 / COMPACT_EVERY of it (dropping rows copies the cache, so several go at once), so a short request
    #    batched with a long one stops costing compute soon after it ends.
    live = list(range(rows))
    for t in range(steps):
        tokens = torch.full((len(live),), tokenizer.pad_token_id, dtype=torch.long, device=device)
        for r, request in enumerate(requests):
            members = [b for b, i in enumerate(live) if owners[i][0] == r and states[i].finish_reason is None]
            if not members:
                continue
            if request.cancel is not None and request.cancel.is_set():
                for b in members:  # its rows leave the batch with the next compaction
                    states[live[b]].finish_reason = "cancelled"
                continue
            index = torch.tensor(members, device=device)
            raw = logits.index_select(0, index)  # (n, V)
            chosen = _sample(raw, params[r], generators[r])
            tokens[index] = chosen
            infos = (
                _token_infos(tokenizer, raw.float().log_softmax(-1), chosen, request.top_logprobs)
                if request.top_logprobs is not None
                else [None] * len(members)
            )
            for b, token_id, info in zip(members, chosen.tolist(), infos, strict=True):
                i = live[b]
                _advance(tokenizer, states[i], token_id, info, eos, request, t, on_delta, owners[i])
        done = [b for b, i in enumerate(live) if states[i].finish_reason is not None]
        if len(done) == len(live):
            break
        if len(done) * COMPACT_EVERY >= len(live):
            keep = torch.tensor([b for b, i in enumerate(live) if states[i].finish_reason is None], device=device)
            cache.batch_select_indices(keep)
            tokens, attention, lengths = tokens[keep], attention[keep], lengths[keep]
            live = [live[b] for b in keep.tolist()]
        args = (tokens, lengths + t, attention[:, : width + t + 1])
        logits = step(*args, cache)
    grouped: list[list[RowState]] = [[] for _ in requests]
    for (r, _), state in zip(owners, states, strict=True):
        grouped[r].append(state)
    return grouped


def _advance(
    tokenizer: PreTrainedTokenizerBase,
    state: RowState,
    token_id: int,
    info: TokenInfo | None,
    eos: set[int],
    request: DecodeRequest,
    t: int,
    on_delta: DeltaFn | None,
    owner: tuple[int, int],
) -> None:
    """Append one sampled token to a row: finish on EOS, a stop string or max_tokens; report the news."""
    new_infos = []
    if token_id in eos:
        state.finish_reason = "stop"
    else:
        state.ids.append(token_id)
        if info is not None:
            state.tokens.append(info)
            new_infos.append(info)
        state.text = tokenizer.decode(state.ids, skip_special_tokens=True)
    if state.finish_reason is None and t + 1 >= request.max_tokens:
        state.finish_reason = "length"
    shown, stopped = _visible(state.text, request.stop, state.finish_reason is not None)
    if stopped:
        state.finish_reason = "stop"
    if state.finish_reason is not None:
        state.text = shown
    delta = shown[state.emitted :]
    state.emitted = max(state.emitted, len(shown))
    if on_delta is not None and (delta or new_infos):
        on_delta(owner[0], owner[1], delta, new_infos)


def _sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> torch.Tensor:
    processed = process_logits(logits, params, None)
    return processed.argmax(dim=-1) if params.greedy else inverse_cdf_sample(processed, generator)


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()  # fresh entropy: unseeded requests differ
    else:
        generator.manual_seed(seed)
    return generator
