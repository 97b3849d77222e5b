"""Rollout: sample G completions for each of P prompts with the model's KV cache.

Each prompt is prefilled once and its KV cache shared by the G members of its group (repeat after
prefill, not before). A row is no longer sampled once it finishes (EOS or a stop string) and leaves the
batch with the next few finished rows, so the decode cost follows the live rows, not the longest one.
The cache and the decode step come from the run's backend (backend.py): transformers' own, or the
kernels' preallocated cache and lean step (workers/engine/kernels/), which produce the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedTokenizerBase

from workers.engine.backend import Backend, cache_keyword, select_backend
from workers.engine.sampling import SamplingParams, next_tokens

# Finished rows leave the batch once they are at least 1 / COMPACT_EVERY of it: each drop copies the
# live rows' cache, and a finished row left in the batch costs a row of every decode step's compute.
COMPACT_EVERY = 8


@dataclass
class Rollout:
    """N = P * G completions, rows grouped by prompt (row i belongs to prompt i // G)."""

    prompt_ids: torch.Tensor  # (N, Lp) left-padded with pad id
    prompt_mask: torch.Tensor  # (N, Lp) 1 on real prompt tokens
    completion_ids: torch.Tensor  # (N, C) right-padded with pad id; C = longest completion
    completion_mask: torch.Tensor  # (N, C) 1 on generated tokens, up to and including EOS / the stop token
    truncated: torch.Tensor  # (N,) bool: hit max_new_tokens without EOS or a stop string
    # (N,) decoded completions, special tokens skipped, each cut right after its first stop string (the
    # token completing it may decode to more characters; it stays whole in completion_ids and the mask)
    texts: list[str]
    # (N, C) float32 log-prob of each completion token under the distribution it was drawn from (after
    # temperature, top-k, top-p, min-p and the repetition penalty), 0 on padding; None for greedy decoding.
    # The trainer's log-probs use the temperature only, so the two differ (see the sampling/* metrics).
    sampler_logps: torch.Tensor | None = None

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(dim=1)  # (N,)


def left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """list of token lists -> (ids, mask), both (len(sequences), longest), padded on the left."""
    width = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    return ids, mask


def eos_token_ids(model: nn.Module, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's EOS plus any the model's generation config declares (chat models have several)."""
    ids = {tokenizer.eos_token_id}
    generation_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(generation_eos, int):
        ids.add(generation_eos)
    elif generation_eos:
        ids.update(generation_eos)
    return sorted(i for i in ids if i is not None)


@dataclass
class _DecodeBatch:
    """The rows in the decode batch, aligned with the cache's rows. A finished row stays (unsampled)
    until the next compaction: dropping rows copies the cache, so it is done for several at once."""

    rows: torch.Tensor  # (R,) original row of each batch row
    sampling: torch.Tensor  # (R,) bool: not finished yet
    attention: torch.Tensor  # (R, Lp + max_new_tokens) attention mask of the whole rollout
    history: torch.Tensor | None  # (R, Lp + t) token ids for the repetition penalty, or None

    def keep(self, index: torch.Tensor, cache: DynamicCache) -> None:
        cache.batch_select_indices(index)
        self.rows, self.sampling, self.attention = self.rows[index], self.sampling[index], self.attention[index]
        self.history = self.history[index] if self.history is not None else None


def _prefill(
    model: nn.Module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, cache: DynamicCache, group_size: int
) -> torch.Tensor:
    """Run each prompt once into `cache`, then share it across the prompt's group: P rows -> N = P * G.
    Returns the (N, V) logits of the first completion token."""
    positions = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)  # count real tokens: left padding shifts nothing
    logits: torch.Tensor = model(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        position_ids=positions,
        **{cache_keyword(model): cache},
        use_cache=True,
        logits_to_keep=1,
    ).logits[:, -1]  # (P, V)
    cache.batch_repeat_interleave(group_size)
    return logits.repeat_interleave(group_size, dim=0)


@torch.no_grad()
def generate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    *,
    group_size: int,
    max_new_tokens: int,
    params: SamplingParams,
    generator: torch.Generator,
    stop: list[str] | None = None,
    backend: Backend | None = None,
) -> Rollout:
    """G = group_size completions for each of the P `prompts` (token lists) -> a Rollout of N = P * G rows.
    `backend` supplies the cache and the decode step (default: select_backend(), the kernels)."""
    backend = backend or select_backend()
    device = next(model.parameters()).device
    eos = torch.tensor(eos_token_ids(model, tokenizer), device=device)
    prompt_ids, prompt_mask = left_pad(prompts, tokenizer.pad_token_id)  # (P, Lp)
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    width = prompt_ids.size(1)

    # 1) prefill each prompt once and share its cache across its group
    cache = backend.rollout_cache(model, width + max_new_tokens)
    logits = _prefill(model, prompt_ids, prompt_mask, cache, group_size)  # (N, V)
    num_rows = logits.size(0)
    row_lengths = prompt_mask.sum(dim=1).repeat_interleave(group_size)  # (N,) real prompt tokens
    history = _penalty_history(prompt_ids, prompt_mask, params)  # (P, Lp) or None
    batch = _DecodeBatch(
        rows=torch.arange(num_rows, device=device),
        sampling=torch.ones(num_rows, dtype=torch.bool, device=device),
        attention=torch.cat(
            [prompt_mask.repeat_interleave(group_size, dim=0), prompt_mask.new_ones(num_rows, max_new_tokens)], dim=1
        ),
        history=history.repeat_interleave(group_size, dim=0) if history is not None else None,
    )
    completion = torch.full((num_rows, max_new_tokens), tokenizer.pad_token_id, dtype=torch.long, device=device)
    sampler_logps = None if params.greedy else torch.zeros((num_rows, max_new_tokens), device=device)
    lengths = torch.full((num_rows,), max_new_tokens, dtype=torch.long, device=device)
    finished = torch.zeros(num_rows, dtype=torch.bool, device=device)
    decode_step = backend.decode_step(model, cache, num_rows)

    # 2) decode. Live rows are sampled in row order, so the draws are the same whenever finished rows
    #    leave the batch.
    for t in range(max_new_tokens):
        live = batch.sampling.nonzero().squeeze(1)  # (R,) batch positions still sampling
        all_live = live.numel() == batch.rows.numel()
        history = batch.history if batch.history is None or all_live else batch.history[live]
        rows = batch.rows[live]  # (R,) original rows
        draws = generator if isinstance(generator, torch.Generator) else generator.rows(rows)  # streams.py
        tokens, token_logps = next_tokens(logits if all_live else logits[live], params, draws, history)  # (R,)
        completion[rows, t] = tokens
        if sampler_logps is not None and token_logps is not None:
            sampler_logps[rows, t] = token_logps
        done = torch.isin(tokens, eos)
        if stop:
            done |= _hit_stop(tokenizer, completion[rows, : t + 1], stop)
        lengths[rows[done]] = t + 1
        finished[rows[done]] = True
        if t == max_new_tokens - 1 or bool(done.all()):
            break
        batch.sampling[live[done]] = False
        step_tokens = (
            tokens if all_live else torch.full_like(batch.rows, tokenizer.pad_token_id).index_copy_(0, live, tokens)
        )
        if batch.history is not None:
            batch.history = torch.cat([batch.history, step_tokens[:, None]], dim=1)
        if (batch.rows.numel() - live.numel() + int(done.sum())) * COMPACT_EVERY >= batch.rows.numel():
            keep = batch.sampling.nonzero().squeeze(1)
            batch.keep(keep, cache)
            step_tokens = step_tokens[keep]
        logits = decode_step(step_tokens, row_lengths[batch.rows] + t, batch.attention[:, : width + t + 1], cache)
    rollout = _assemble(tokenizer, prompt_ids, prompt_mask, group_size, completion, lengths, finished, stop)
    if sampler_logps is not None:
        rollout.sampler_logps = sampler_logps[:, : rollout.completion_ids.size(1)] * rollout.completion_mask
    return rollout


def _assemble(
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    group_size: int,
    completion: torch.Tensor,
    lengths: torch.Tensor,
    finished: torch.Tensor,
    stop: list[str] | None = None,
) -> Rollout:
    width = int(lengths.max())
    completion_mask = (torch.arange(width, device=completion.device)[None, :] < lengths[:, None]).long()  # (N, C)
    completion_ids = completion[:, :width].masked_fill(completion_mask == 0, tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(
        [ids[:n].tolist() for ids, n in zip(completion_ids, lengths, strict=True)], skip_special_tokens=True
    )
    if stop:
        texts = [trim_at_stop(text, stop) for text in texts]
    return Rollout(
        prompt_ids=prompt_ids.repeat_interleave(group_size, dim=0),
        prompt_mask=prompt_mask.repeat_interleave(group_size, dim=0),
        completion_ids=completion_ids,
        completion_mask=completion_mask,
        truncated=~finished,
        texts=texts,
    )


def trim_at_stop(text: str, stop: list[str]) -> str:
    """The text up to and including the first stop string it contains (the one that ends first).

    The token that completes a stop string may carry characters after it (a token 'X.\n' for stop '.');
    the completion's text (what the reward sees) ends right after the stop string, while its tokens
    (and so the loss mask) keep that whole last token: it is what the policy sampled."""
    ends = [text.find(s) + len(s) for s in stop if s in text]
    return text[: min(ends)] if ends else text


def _penalty_history(ids: torch.Tensor, mask: torch.Tensor, params: SamplingParams) -> torch.Tensor | None:
    """Token ids the repetition penalty applies to, (P, Lp); None when the penalty is off. Padding is
    replaced by the row's first real token, so it penalises nothing that is not in the prompt."""
    if params.repetition_penalty == 1.0:
        return None
    first_real = ids.gather(1, mask.argmax(dim=1, keepdim=True))  # (P, 1)
    return torch.where(mask.bool(), ids, first_real)


def _hit_stop(tokenizer: PreTrainedTokenizerBase, completions: torch.Tensor, stop: list[str]) -> torch.Tensor:
    """(R, t) tokens so far -> (R,) bool: the decoded text contains a stop string."""
    texts = tokenizer.batch_decode(completions.tolist(), skip_special_tokens=True)
    return torch.tensor([any(s in text for s in stop) for text in texts], device=completions.device)
